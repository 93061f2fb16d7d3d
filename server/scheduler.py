"""Running jobs exactly once per deployment: database leases, a run log, and APScheduler.

Every server process may run a scheduler (a province runs several stateless app processes);
the database decides who runs each job:

- `job_leases` has one row per job. A runner takes it with one atomic upsert inside
  BEGIN IMMEDIATE, which succeeds only when the current lease has expired
  (`Storage.take_job_lease`). The lease lasts JOB_LEASE_SECONDS (or the job's own
  `lease_seconds`), so a runner that dies mid-job blocks the job only that long.
- A scheduled run names its occurrence (a "slot": the local date, or hour for hourly jobs).
  When a run finishes, the slot is stored with the lease, and no runner takes the lease for
  that slot again, so two processes whose schedulers fire seconds apart run it once.
- `job_runs` logs each run: job, holder, slot, started, finished, ok, summary or error.

Runs from the CLI (`villagecheck run-job NAME`) take the same lease but name no slot: they run
whenever no one else is running that job.
"""

import atexit
import logging
import os
import socket
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .jobs import JOBS, JobContext
from .storage import Storage, connect

log = logging.getLogger("villagecheck.jobs")
EXTENSION = "villagecheck.scheduler"


@dataclass(frozen=True)
class Outcome:
    job: str
    ran: bool
    run_id: int | None = None
    summary: dict | None = None
    error: str | None = None


def make_holder(prefix: str = "") -> str:
    """A name for this runner: host, process and a random part (unique per scheduler)."""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def run_job(
    store: Storage,
    name: str,
    *,
    clock: Callable[[], datetime],
    config,
    holder: str,
    slot: str | None = None,
    month: str | None = None,
    seed: int | None = None,
    media=None,
    jobs=None,
) -> Outcome:
    """Run one job if this holder gets its lease; the run is logged either way it ends.

    Returns `Outcome(ran=False)` when another runner holds the lease or the slot has run.
    An exception in the job is logged and returned as `error`, never raised.
    """
    spec = (jobs or JOBS)[name]
    start = clock()
    until = start + timedelta(seconds=int(spec.lease_seconds or config["JOB_LEASE_SECONDS"]))
    if not store.take_job_lease(name, holder, now=_iso(start), until=_iso(until), slot=slot):
        return Outcome(name, ran=False)
    run_id = store.start_job_run(name, holder, slot=slot, at=_iso(start))
    summary, error = None, None
    try:
        ctx = JobContext(store, start, config, month=month, seed=seed, media=media)
        summary = spec.run(ctx)
    except Exception:
        error = traceback.format_exc(limit=5)
        log.exception("job %s failed", name)
    finished = _iso(clock())
    store.finish_job_run(run_id, ok=error is None, summary=summary, error=error, at=finished)
    store.release_job_lease(name, holder, now=finished, slot=slot if error is None else None)
    return Outcome(name, ran=True, run_id=run_id, summary=summary, error=error)


def slot_of(name: str, now: datetime, tz: str) -> str:
    return now.astimezone(ZoneInfo(tz)).strftime(JOBS[name].slot)


def _scheduled(app, name: str, holder: str) -> None:
    """What APScheduler calls: a fresh connection, the lease, the job."""
    from .context import now

    with app.app_context():
        store = connect(app.config["DATABASE_URL"])
        try:
            slot = slot_of(name, now(), app.config["TIMEZONE"])
            outcome = run_job(store, name, clock=now, config=app.config, holder=holder, slot=slot)
        finally:
            store.close()
    if outcome.ran:
        log.info("job %s slot %s: %s", name, slot, outcome.error or outcome.summary)


def start(app):
    """Start the in-process scheduler once per app (SCHEDULER_ENABLED or `villagecheck serve`)."""
    if app.extensions.get(EXTENSION):
        return app.extensions[EXTENSION]
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    tz = ZoneInfo(app.config["TIMEZONE"])
    scheduler = BackgroundScheduler(
        timezone=tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    holder = make_holder()
    for name, spec in JOBS.items():
        scheduler.add_job(
            _scheduled,
            CronTrigger(timezone=tz, **spec.cron),
            args=[app, name, holder],
            id=name,
            name=spec.help,
        )
        if spec.at_start:
            scheduler.add_job(_scheduled, args=[app, name, holder], id=f"{name}@start")
    scheduler.start()
    app.extensions[EXTENSION] = scheduler
    atexit.register(_shutdown, scheduler)
    return scheduler


def _shutdown(scheduler) -> None:
    if scheduler.running:
        scheduler.shutdown(wait=False)
