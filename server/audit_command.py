"""`villagecheck audit verify`: check the audit log's hash chain; and the retention settings.

The chain itself (appending, verifying, archiving) is in server/storage/audit_chain.py; the
daily `audit-retention` job (server/jobs.py) anchors the head and archives old entries.
"""

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import click
from flask import current_app, has_app_context
from flask.cli import with_appcontext

from .context import storage
from .storage import audit_chain

log = logging.getLogger("villagecheck.audit")

#: 网络安全法 art. 21 and 等保 2.0: logs are kept at least six months.
RETENTION_FLOOR_DAYS = 180


def retention_days(config) -> int:
    """AUDIT_RETENTION_DAYS, never below the floor (0: keep everything); a smaller value is
    raised to the floor with a warning."""
    try:
        days = int(config.get("AUDIT_RETENTION_DAYS", RETENTION_FLOOR_DAYS))
    except (TypeError, ValueError):
        days = -1
    if days == 0:
        return 0
    if days < RETENTION_FLOOR_DAYS:
        log.warning(
            "AUDIT_RETENTION_DAYS=%r is below the floor of %d days; using %d",
            config.get("AUDIT_RETENTION_DAYS"),
            RETENTION_FLOOR_DAYS,
            RETENTION_FLOOR_DAYS,
        )
        return RETENTION_FLOOR_DAYS
    return days


def archive_dir(config) -> Path:
    folder = str(config.get("AUDIT_ARCHIVE_DIR") or "audit-archive")
    base = current_app.instance_path if has_app_context() else "."
    return Path(folder if os.path.isabs(folder) else os.path.join(base, folder))


def cutoff(now: datetime, days: int) -> str:
    """The `at` text entries older than `days` before `now` are below (UTC, like `now_iso`)."""
    return (now - timedelta(days=days)).isoformat(timespec="milliseconds")


def run_retention(store, now: datetime, config, *, folder=None) -> dict:
    """Anchor the chain head, then archive entries older than the retention (if any)."""
    at = now.isoformat(timespec="milliseconds")
    days = retention_days(config)
    summary = {"retention_days": days}
    if days:
        summary.update(
            audit_chain.archive_older_than(
                store, cutoff(now, days), folder or archive_dir(config), at=at
            )
        )
    anchored = audit_chain.anchor(store, at)
    summary["head_seq"] = anchored["seq"] if anchored else 0
    return summary


@click.group("audit")
def audit_group():
    """审计日志：校验哈希链。"""


@audit_group.command("verify")
@click.option(
    "--archive",
    "archive",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="also verify the archive files in this folder, from the first entry",
)
@with_appcontext
def verify_command(archive):
    """Verify the audit log's hash chain; exit code 1 at the first broken link."""
    if archive is not None and not archive.is_dir():
        raise click.ClickException(f"归档目录不存在：{archive}")
    verdict = audit_chain.verify(storage(), archive)
    if verdict.ok:
        archived = f"，另有归档 {verdict.archived} 条" if archive is not None else ""
        click.echo(f"审计日志完整：{verdict.count} 条{archived}，链头 {verdict.head or '-'}")
        return
    where = []
    if verdict.entry_id is not None:
        where.append(f"id {verdict.entry_id}")
    if verdict.seq is not None:
        where.append(f"seq {verdict.seq}")
    click.echo(f"审计日志被篡改：{' '.join(where)}：{verdict.problem}", err=True)
    raise SystemExit(1)


COMMANDS = [audit_group]
