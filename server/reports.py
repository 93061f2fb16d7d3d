"""The monthly township report (督查月报), a printable desk page.

`GET /desk/reports/monthly?township=…&month=YYYY-MM` (session login, scoped to the viewer's
villages `g.villages`; a township the viewer sees none of is a 404). One page, made to be printed
or saved as PDF (Chromium's 打印 → 另存为 PDF; tests/test_print_pdf.py renders it with
`page.pdf`):

1. indicators of the township and its villages against their targets (server/indicators.py,
   from the month's snapshot, or computed now when there is none);
2. problems found that month: each inspection answer that says something is wrong (a check
   answered 否, 垃圾满溢 answered 是, a tidiness item that failed), with the inspection's photos;
   rejected submissions are left out here and listed in 4;
3. monthly tasks that are overdue;
4. submissions rejected or sent back for re-inspection, with the reviewer's reason.

Registered on the reports blueprint of server/exports.py (endpoint `reports.monthly_report`).
"""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import abort, current_app, g, render_template, request

from sync.review import STATE_NAMES

from . import indicators, jobs
from .context import now, now_iso, storage
from .exports import MONTH, bp, form_columns, tidiness_target
from .overrides import villages_with_class
from .supervisor import TASK_STATUS, _visible_photos
from .web import login_required

PROBLEM_FORMS = ("toilet", "rubbish", "fire", "tidiness")
BAD_WHEN_TRUE = {"overflow"}  # yes/no checks where 是 is the problem
MAX_PROBLEMS = 200  # a printable report, not an export: past this, the count and a pointer
SENT_BACK = ("rejected", "reinspection_requested")


def problems_in(answers: dict, columns: list[dict]) -> list[str]:
    """What an inspection's answers say is wrong, as Chinese phrases ("是否正常运行：否")."""
    found = []
    labels = {f["name"]: f["label"]["zh"] for f in columns}
    for field in columns:
        value = answers.get(field["name"])
        label = field["label"]["zh"]
        if field["type"] == "yes_no" and isinstance(value, bool):
            if value is (field["name"] in BAD_WHEN_TRUE):
                found.append(f"{label}：{'是' if value else '否'}")
        elif field["name"] == "failed_items" and isinstance(value, list) and value:
            found.append("未达标项：" + "、".join(str(labels.get(v, v)) for v in value))
        elif field["type"] == "repeat" and isinstance(value, list):
            inner = [f for f in field.get("fields", []) if f.get("type") != "note"]
            for number, instance in enumerate(value, start=1):
                if isinstance(instance, dict):
                    found += [f"{label} 第{number}项 · {p}" for p in problems_in(instance, inner)]
    return found


def _local(value: str | None, zone) -> str:
    try:
        return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return value or ""


@bp.get("/desk/reports/monthly")
@login_required
def monthly_report():
    store = storage()
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    today = now().astimezone(zone).date()
    month = request.args.get("month") or today.strftime("%Y-%m")
    if not MONTH.fullmatch(month):
        abort(400, description="月份格式应为 YYYY-MM")
    seen = store.villages(g.villages)
    townships = sorted({v["township"] for v in seen})
    township = request.args.get("township") or (townships[0] if townships else None)
    if township not in townships:
        abort(404)
    villages = sorted(v["code"] for v in seen if v["township"] == township)

    snapshot = store.indicator_snapshot(month)
    if snapshot:
        facts, computed_at = snapshot["data"]["facts"], snapshot["computed_at"]
    else:
        facts = jobs.indicator_facts(store, month, today=today.isoformat(), villages=villages)
        computed_at = now_iso()
    report = indicators.report(
        villages_with_class(store, current_app.config),
        facts,
        visible=villages,
        tidiness_target=tidiness_target(store, villages),
    )

    problems, more = [], 0
    titles = {}
    for form_id in PROBLEM_FORMS:
        versions = store.form_versions(form_id)
        if not versions:
            continue
        titles[form_id] = versions[0].get("title", {}).get("zh") or form_id
        columns = form_columns(versions)
        for row in store.iter_export_submissions(form_id, villages, month=month):
            if row["state"] in SENT_BACK:
                continue
            found = problems_in(json.loads(row["answers"]), columns)
            if not found:
                continue
            if len(problems) >= MAX_PROBLEMS:
                more += 1
                continue
            problems.append(
                {
                    "id": row["id"],
                    "form": titles[form_id],
                    "village": row["village_name"],
                    "record": row["record_name"] or "（未命名）",
                    "observed_at": _local(row["observed_at"], zone),
                    "author": row["author"],
                    "found": found,
                    "photos": [],
                }
            )
    photos = _visible_photos(store, store.desk_photos(p["id"] for p in problems))
    by_id = {p["id"]: p for p in problems}
    for item in photos:
        if item["held"] and not item.get("withheld"):
            by_id[item["submission_id"]]["photos"].append(item["sha256"])

    overdue = []
    for task in store.desk_tasks(villages, month):
        status = ((task["state"].get("status") or {}).get("value")) or "not_started"
        late = status == "overdue" or (
            status != "done" and bool(task["due_on"]) and task["due_on"] < today.isoformat()
        )
        if late:
            overdue.append({**task, "status_text": TASK_STATUS.get(status, status)})

    sent_back, _ = store.desk_queue(villages, states=SENT_BACK, limit=1000)
    sent_back = [s for s in sent_back if _local(s["observed_at"], zone)[:7] == month]
    reasons = {r["submission_id"]: r for r in store.latest_reviews(s["id"] for s in sent_back)}
    for s in sent_back:
        review = reasons.get(s["id"]) or {}
        s["state_text"] = STATE_NAMES.get(s["state"], s["state"])
        s["reason"] = review.get("reason") or ""
        s["reviewer"] = review.get("reviewer") or ""
        s["observed_local"] = _local(s["observed_at"], zone)
        s["form_title"] = titles.get(s["form_id"], s["form_id"])

    return render_template(
        "report_monthly.html",
        month=month,
        township=township,
        townships=townships,
        report=report,
        computed_at=_local(computed_at, zone),
        indicators=indicators.INDICATORS,
        problems=problems,
        more=more,
        overdue=overdue,
        sent_back=sent_back,
        printed_on=today.isoformat(),
    )
