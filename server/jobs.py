"""The scheduled jobs: what each does, given a storage, a time and the settings.

Each job is a function of a `JobContext` (the time is passed in, never read here) returning a
small JSON-able summary for the run log. The rules they apply are pure and live elsewhere:
`server.tasks.month_tasks` (the month's tasks), `sync.merge` through `push.apply_observation`
(the overdue mark is an ordinary observation by the server), `server.sampling.draw_sample` and
`server.indicators`. Leases, the run log and APScheduler are in server/scheduler.py.

Local dates (the 1st of the month, a task's due date) are in the deployment's time zone
(setting TIMEZONE, Asia/Shanghai): the December tasks appear at 00:05 Beijing time on Dec 1,
which is still Nov 30 in UTC.
"""

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from forms.definitions import load_task_templates
from sync.clock import decode
from sync.merge import Observation

from . import indicators, sampling
from .audit_command import run_retention
from .context import media_store_for
from .ingest import reprocess_held
from .push import apply_observation, clock_ahead_ms, next_server_clock
from .storage import Storage
from .tasks import month_tasks


@dataclass
class JobContext:
    store: Storage
    now: datetime  # timezone-aware
    config: Mapping
    month: str | None = None  # YYYY-MM, for the jobs that work on one month
    seed: int | None = None  # draw-sample only: reproduce a draw
    media: object | None = None  # a MediaStore; the settings' store when None

    @property
    def local(self) -> datetime:
        return self.now.astimezone(ZoneInfo(self.config.get("TIMEZONE", "Asia/Shanghai")))

    @property
    def at(self) -> str:
        return self.now.isoformat(timespec="milliseconds")

    @property
    def this_month(self) -> str:
        return self.month or self.local.strftime("%Y-%m")


def generate_tasks(ctx: JobContext) -> dict:
    """Every village's tasks for the month; runs daily, so it is idempotent by design.

    Task ids are a function of village, month and template (`month_tasks`), and inserting an
    existing id does nothing, so a second run creates nothing and a village added mid-month
    gets its tasks on the next run.
    """
    templates = load_task_templates()
    created = 0
    villages = ctx.store.villages()
    with ctx.store.write():
        for village in villages:
            for row in month_tasks(village["code"], ctx.this_month, templates):
                created += ctx.store.insert_task(row, at=ctx.at)
    return {"month": ctx.this_month, "villages": len(villages), "created": created}


def mark_overdue(ctx: JobContext) -> dict:
    """Set status "overdue" on tasks past their due date and not done, as server observations.

    The observation carries the server's clock (after every clock it holds) and, as its base,
    the clock of the status it saw. A "done" the secretary reports afterwards has a newer clock
    (her phone has received the server's clock) and wins; a "done" made offline before the mark
    but synced after it conflicts within CONFLICT_WINDOW_HOURS and is shown to a supervisor.
    """
    today = ctx.local.date().isoformat()
    window_ms = int(ctx.config["CONFLICT_WINDOW_HOURS"] * 3600 * 1000)
    now_ms = int(ctx.now.timestamp() * 1000)
    marked = []
    with ctx.store.write():
        # Lock the tasks (all at once, in one order: PostgreSQL), then read them again: a push
        # may have marked one done meanwhile.
        ctx.store.lock_records(t["id"] for t in ctx.store.tasks_not_done_due_before(today))
        for task in ctx.store.tasks_not_done_due_before(today):
            clock = next_server_clock(ctx.store, now_ms, clock_ahead_ms(ctx.config))
            base = {"status": decode(task["status_clock"])} if task["status_clock"] else {}
            obs = Observation(
                id=f"overdue:{task['id']}:{clock}",
                record_id=task["id"],
                clock=clock,
                fields={"status": "overdue"},
                base=base,
            )
            apply_observation(ctx.store, "task", obs, window_ms, at=ctx.at)
            marked.append(task["id"])
    return {"today": today, "marked": len(marked), "tasks": marked[:50]}


def draw_sample(ctx: JobContext) -> dict:
    """Draw the spot-check sample from the submissions no earlier draw has considered."""
    pool = ctx.store.sample_pool()
    if not pool:
        return {"pool": 0, "picked": 0}
    seed = ctx.seed if ctx.seed is not None else secrets.randbits(62)
    share = float(ctx.config["SAMPLE_SHARE"])
    threshold = int(ctx.config.get("HIGH_RISK_SCORE", 50))
    members = sampling.draw_sample(pool, seed, share, threshold)
    sample_id = ctx.store.save_sample(
        drawn_at=ctx.at, seed=seed, rule=sampling.rule(share, threshold), members=members
    )
    return {
        "sample_id": sample_id,
        "seed": seed,
        "pool": len(members),
        "picked": sum(m["picked"] for m in members),
        "high_risk": sum(m["reason"] == "high_risk" for m in members),
    }


def recompute_indicators(ctx: JobContext) -> dict:
    """Recompute every village's indicator facts for the month and store them as a snapshot."""
    month = ctx.this_month
    facts = indicator_facts(ctx.store, month, today=ctx.local.date().isoformat())
    ctx.store.save_indicator_snapshot(month, {"facts": facts}, at=ctx.at)
    return {"month": month, "villages": len(facts)}


def indicator_facts(store: Storage, month: str, *, today: str, villages=None) -> dict:
    """Indicator facts of the month, per village (all villages, or those given)."""
    codes = None if villages is None else sorted(villages)
    return indicators.village_facts(
        store.villages(codes),
        store.indicator_facility_rows(codes),
        store.indicator_task_rows(month, codes),
        store.inspections_by_village(month),
        today=today,
    )


def clean_partials(ctx: JobContext) -> dict:
    """Remove uploads left unfinished for longer than PARTIAL_UPLOAD_MAX_AGE_DAYS."""
    media = _media(ctx)
    seconds = float(ctx.config["PARTIAL_UPLOAD_MAX_AGE_DAYS"]) * 86400
    removed = media.remove_partials_older_than(seconds, now=ctx.now.timestamp())
    return {"removed": len(removed), "sha256": removed[:20]}


def reprocess_held_photos(ctx: JobContext) -> dict:
    """Queue photos held but not processed (the server died between upload and queueing) for
    the ingest workers, and judge submissions left `received` with all their photos in."""
    return reprocess_held(ctx.store, _media(ctx), at=ctx.at)


def audit_retention(ctx: JobContext) -> dict:
    """Anchor the audit chain's head, and archive entries older than AUDIT_RETENTION_DAYS
    (never fewer than 180) to AUDIT_ARCHIVE_DIR: never deleted without their archive file."""
    return run_retention(ctx.store, ctx.now, ctx.config)


def _media(ctx: JobContext):
    return ctx.media or media_store_for(ctx.config)


@dataclass(frozen=True)
class JobSpec:
    name: str
    run: Callable[[JobContext], dict]
    cron: dict  # APScheduler CronTrigger fields, in the TIMEZONE setting
    slot: str  # strftime of local time naming one occurrence: each slot runs once
    help: str
    at_start: bool = False  # also run once when the scheduler starts
    lease_seconds: int | None = None  # instead of JOB_LEASE_SECONDS


JOBS = {
    spec.name: spec
    for spec in (
        JobSpec(
            "generate-tasks",
            generate_tasks,
            {"hour": 0, "minute": 5},
            "%Y-%m-%d",
            "每月任务：每天 00:05 补齐本月各村任务（1 日生成新月份）",
        ),
        JobSpec(
            "mark-overdue",
            mark_overdue,
            {"hour": 0, "minute": 15},
            "%Y-%m-%d",
            "逾期：每天 00:15 把过了期限未完成的任务标为逾期",
        ),
        JobSpec(
            "draw-sample",
            draw_sample,
            {"hour": 6, "minute": 0},
            "%Y-%m-%d",
            "抽查样本：每天 06:00 抽取（高风险全抽，其余按比例随机）",
        ),
        JobSpec(
            "recompute-indicators",
            recompute_indicators,
            {"minute": 30},
            "%Y-%m-%dT%H",
            "指标：每小时 30 分重新计算本月指标快照",
        ),
        JobSpec(
            "clean-partials",
            clean_partials,
            {"hour": 3, "minute": 0},
            "%Y-%m-%d",
            "清理：每天 03:00 删除长期未完成的照片上传",
        ),
        JobSpec(
            "reprocess-held",
            reprocess_held_photos,
            {"minute": "*/10"},
            "%Y-%m-%dT%H:%M",
            "照片补处理：启动时和每 10 分钟处理已收到但未处理完的照片",
            at_start=True,
            lease_seconds=600,  # a crash mid-run delays the next run by one cycle, not an hour
        ),
        JobSpec(
            "audit-retention",
            audit_retention,
            {"hour": 3, "minute": 30},
            "%Y-%m-%d",
            "审计日志：每天 03:30 记录链头锚点，并归档超过保留期（至少 180 天）的记录",
        ),
    )
}
