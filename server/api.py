"""The sync API under /api/v1: pull, push and a record's history.

Views only read the request, call storage and the pure rules, and shape the answer; the push
rules are in server/push.py and sync/, the merge rule in sync/merge.py.
"""

from flask import Blueprint, current_app, g, jsonify, request

from sync import protocol, review
from sync.clock import encode

from . import evidence, push, recount
from .auth import require_token
from .context import now_iso, now_ms, storage
from .errors import ApiError
from .requests import json_body

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def server_clock(store) -> str:
    """The server's clock reading for phones to `receive`."""
    ahead_ms = push.clock_ahead_ms(current_app.config)
    return encode(push.next_server_clock(store, now_ms(), ahead_ms))


def _record_out(row: dict, *, task: bool = False, conflicts=None) -> dict:
    state = row["state"]
    out = {
        "id": row["id"],
        "village": row["village_code"],
        "fields": {k: v["value"] for k, v in sorted(state.items())},
        "clocks": {k: v["clock"] for k, v in sorted(state.items())},
    }
    if conflicts is not None:
        out["conflicts"] = sorted(conflicts.get(row["id"], ()))
    if task:
        out.update(
            month=row["month"], template=row["template"], title=row["title"], due_on=row["due_on"]
        )
    else:
        out.update(kind=row["kind"], name=row["name"], lat=row["lat"], lon=row["lon"])
    return out


def _village_out(row: dict) -> dict:
    return {
        k: row[k]
        for k in ("code", "name", "township", "county", "county_class", "households", "lat", "lon")
    }


@bp.get("/sync/pull")
@require_token
def pull():
    """Changes after the cursor that the caller may see, a page at a time."""
    config = current_app.config
    try:
        limit = int(request.args.get("limit", config["PULL_PAGE_SIZE"]))
    except ValueError:
        raise ApiError(400, "invalid_limit", "limit 必须是整数") from None
    if not 1 <= limit <= config["PULL_PAGE_MAX"]:
        raise ApiError(400, "invalid_limit", f"limit 必须在 1 到 {config['PULL_PAGE_MAX']} 之间")
    scope = protocol.scope_key(g.user["id"], g.villages)
    try:
        since, reset = protocol.decode_cursor(request.args.get("since"), scope)
    except ValueError:
        raise ApiError(400, "bad_cursor", "同步游标无效，请重新同步") from None
    store = storage()
    rows = store.changes_after(since, g.villages, g.user["id"], limit)
    changed = protocol.latest_per_entity(rows)
    ids = {}
    for entity, entity_id in changed:
        ids.setdefault(entity, []).append(entity_id)
    facilities = [
        f
        for f in store.facilities_by_ids(ids.get("facility", []))
        if f["village_code"] in g.villages
    ]
    tasks = [t for t in store.tasks_by_ids(ids.get("task", [])) if t["village_code"] in g.villages]
    open_fields: dict[str, set] = {}  # record id -> fields in an open conflict
    for c in store.open_conflicts_of([r["id"] for r in facilities + tasks]):
        open_fields.setdefault(c["record_id"], set()).add(c["field"])
    body = {
        "forms": store.form_definitions(ids.get("form", [])),
        "villages": [
            _village_out(v)
            for v in store.villages(ids.get("village", []))
            if v["code"] in g.villages
        ],
        "facilities": [_record_out(f, conflicts=open_fields) for f in facilities],
        "reviews": store.latest_reviews(ids.get("review", [])),
        # What became of the caller's own submissions (state, conflicts): the change log holds
        # these entries for their author only, like reviews.
        "outcomes": store.outcomes(ids.get("review", []) + ids.get("outcome", [])),
        "tasks": [_record_out(t, task=True, conflicts=open_fields) for t in tasks],
    }
    last = rows[-1][0] if rows else since
    return jsonify(
        **body,
        cursor=protocol.encode_cursor(last, scope),
        more=len(rows) == limit,
        reset=reset,
        clock=server_clock(store),
    )


_FORMS = push.FormCache()


@bp.post("/sync/push")
@require_token(roles=("inspector", "secretary", "supervisor", "admin"))
def push_batch():
    """A batch of new facilities and submissions; one result per item."""
    body = json_body(keep_unusable=True)
    try:
        result = push.process(
            storage(),
            body,
            g.user,
            g.villages,
            config=current_app.config,
            now_iso=now_iso(),
            now_ms=now_ms(),
            forms=_FORMS,
        )
    except push.PushRefused as refused:
        raise ApiError(refused.status, refused.code, refused.message) from None
    return jsonify(result)


@bp.get("/facilities/<facility_id>/history")
@require_token
def facility_history(facility_id: str):
    """A facility's current record, every inspection of it, and its conflicts."""
    store = storage()
    facility = store.facility(facility_id)
    if facility is None or facility["village_code"] not in g.villages:
        # Outside the caller's villages looks the same as unknown: no hint where an id lives.
        raise ApiError(404, "not_found", "找不到该设施")
    return jsonify(
        facility=_record_out(facility),
        submissions=store.submissions_of_record(facility_id),
        conflicts=store.conflicts(record_id=facility_id),
    )


@bp.get("/submissions/<submission_id>")
@require_token
def submission(submission_id: str):
    """One submission with its state and the photos the server still lacks."""
    store = storage()
    row = store.submission(submission_id)
    if row is None or row["village_code"] not in g.villages:
        raise ApiError(404, "not_found", "找不到该记录")
    hashes = store.submission_photo_hashes(submission_id)
    body = {"submission": row, "missing": store.missing_media(hashes)}
    if g.user["role"] in ("supervisor", "admin"):
        body["flags"] = evidence.flags_for_viewer(store, submission_id, g.user, g.villages)
    else:
        row.pop("risk_score", None)
    return jsonify(body)


@bp.post("/submissions/<submission_id>/review")
@require_token(roles=("supervisor", "admin"))
def review_submission(submission_id: str):
    """Approve, reject or order a re-inspection; the author's phone sees it on its next pull."""
    body = json_body()
    store = storage()
    row = store.submission(submission_id)
    if row is None or row["village_code"] not in g.villages:
        raise ApiError(404, "not_found", "找不到该记录")
    try:
        state, reason = review.decide(body.get("decision"), body.get("reason"))
    except ValueError as exc:
        raise ApiError(400, "invalid_review", str(exc)) from None
    recount.decide(
        store,
        submission_id,
        decision=body["decision"],
        reason=reason,
        reviewer_id=g.user["id"],
        window_ms=recount.window_ms_of(current_app.config),
        at=now_iso(),
    )
    return jsonify(submission=submission_id, state=state, reason=reason)
