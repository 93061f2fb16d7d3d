"""Creating and upgrading the schema.

A fresh database (SQLite or PostgreSQL) is created from the metadata in tables.py and stamped
with Alembic's newest revision. An SQLite file made by older code is upgraded in place: first by
the migrations it was made with (`MIGRATIONS`, schema 1 to 4, written with sqlite-utils, kept
for exactly that), then by Alembic's revisions (migrations/versions/, schema 5 onwards). Alembic
rather than more hand-written steps because it runs the same revision on both engines, keeps
SQLite's table rebuilds (batch mode) out of our code, and is what the people who will run a
provincial PostgreSQL already know.

The schema version is also kept in `meta` (`schema_version()`), so operators and tests can read
it without Alembic.
"""

from pathlib import Path

import sqlite_utils
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from .dialect import SCHEMA_KEY
from .tables import metadata

SCHEMA_VERSION = 12
#: The Alembic revision of each schema version from 4 on.
REVISIONS = {4: "v4", 5: "v5", 6: "v6", 7: "v7", 8: "v8", 9: "v9", 10: "v10", 11: "v11", 12: "v12"}


def _v1(db: sqlite_utils.Database) -> None:
    db["villages"].create(
        {
            "code": str,
            "name": str,
            "township": str,
            "county": str,
            "county_class": int,
            "households": int,
            "lat": float,
            "lon": float,
        },
        pk="code",
        not_null={"name", "township", "county", "county_class"},
    )
    db["users"].create(
        {
            "id": int,
            "username": str,
            "display_name": str,
            "role": str,
            "password_hash": str,
            "scope_township": str,
            "scope_county": str,
            "active": int,
            "created_at": str,
        },
        pk="id",
        not_null={"username", "role", "password_hash"},
        defaults={"active": 1},
    )
    db["users"].create_index(["username"], unique=True)
    db["assignments"].create(
        {"user_id": int, "village_code": str},
        pk=("user_id", "village_code"),
        foreign_keys=[("user_id", "users", "id"), ("village_code", "villages", "code")],
    )
    db["tokens"].create(
        {
            "id": int,
            "user_id": int,
            "token_hash": str,
            "device_id": str,
            "label": str,
            "created_at": str,
            "last_used_at": str,
            "revoked_at": str,
        },
        pk="id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "token_hash", "created_at"},
    )
    db["tokens"].create_index(["token_hash"], unique=True)
    db["devices"].create(
        {
            "device_id": str,
            "user_id": int,
            "last_seen_at": str,
            "last_clock": str,
            "skew_ms": int,
        },
        pk="device_id",
        foreign_keys=[("user_id", "users", "id")],
    )
    db["forms"].create(
        {"form_id": str, "version": int, "definition": str, "sha256": str, "published_at": str},
        pk=("form_id", "version"),
        not_null={"definition", "sha256"},
    )
    db["facilities"].create(
        {
            "id": str,
            "village_code": str,
            "kind": str,
            "name": str,
            "lat": float,
            "lon": float,
            "state": str,
            "created_by": int,
            "created_clock": str,
            "created_at": str,
            "content_hash": str,
        },
        pk="id",
        foreign_keys=[("village_code", "villages", "code"), ("created_by", "users", "id")],
        not_null={"village_code", "kind", "name", "state"},
    )
    db["facilities"].create_index(["village_code", "kind"])
    db["tasks"].create(
        {
            "id": str,
            "village_code": str,
            "month": str,
            "template": str,
            "title": str,
            "due_on": str,
            "state": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("village_code", "villages", "code")],
        not_null={"village_code", "month", "template", "state"},
    )
    db["tasks"].create_index(["village_code", "month"])
    db["submissions"].create(
        {
            "id": str,
            "form_id": str,
            "form_version": int,
            "record_id": str,
            "record_type": str,
            "village_code": str,
            "author_id": int,
            "device_id": str,
            "clock": str,
            "observed_at": str,
            "received_at": str,
            "answers": str,
            "content_hash": str,
            "state": str,
            "skew_ms": int,
            "risk_score": int,
            "completed_at": str,
        },
        pk="id",
        foreign_keys=[
            ("village_code", "villages", "code"),
            ("author_id", "users", "id"),
        ],
        not_null={"form_id", "form_version", "record_id", "village_code", "clock", "answers"},
    )
    db["submissions"].create_index(["record_id"])
    db["submissions"].create_index(["village_code", "form_id"])
    db["submissions"].create_index(["state", "risk_score"])
    db["reviews"].create(
        {
            "id": int,
            "submission_id": str,
            "decision": str,
            "reason": str,
            "reviewer_id": int,
            "at": str,
        },
        pk="id",
        foreign_keys=[("submission_id", "submissions", "id"), ("reviewer_id", "users", "id")],
        not_null={"submission_id", "decision", "reviewer_id", "at"},
    )
    db["reviews"].create_index(["submission_id"])
    db["flags"].create(
        {
            "submission_id": str,
            "code": str,
            "photo": str,
            "figures": str,
            "message": str,
        },
        foreign_keys=[("submission_id", "submissions", "id")],
        not_null={"submission_id", "code"},
    )
    db["flags"].create_index(["submission_id"])
    db["observations"].create(
        {
            "id": str,
            "record_id": str,
            "clock": str,
            "wall_ms": int,
            "fields": str,
            "base": str,
        },
        pk="id",
        not_null={"record_id", "clock", "wall_ms", "fields", "base"},
    )
    db["observations"].create_index(["record_id", "wall_ms"])
    db["observations"].create_index(["record_id", "clock"])
    db["observations"].create_index(["clock"])
    db["media"].create(
        {
            "sha256": str,
            "size": int,
            "mime": str,
            "width": int,
            "height": int,
            "exif": str,
            "phash": str,
            "crop_hashes": str,
            "created_at": str,
        },
        pk="sha256",
    )
    db["submission_media"].create(
        {
            "submission_id": str,
            "field": str,
            "sha256": str,
            "captured_at": str,
            "position": str,
        },
        pk=("submission_id", "field", "sha256"),
        foreign_keys=[("submission_id", "submissions", "id")],
    )
    db["submission_media"].create_index(["sha256"])
    db["conflicts"].create(
        {
            "id": str,
            "record_id": str,
            "field": str,
            "a": str,
            "b": str,
            "a_value": str,
            "b_value": str,
            "winner": str,
            "resolved_by": str,
            "created_at": str,
        },
        pk="id",
    )
    db["conflicts"].create_index(["record_id", "field"])
    db["changes"].create(
        {
            "seq": int,
            "entity": str,
            "entity_id": str,
            "village_code": str,
            "user_id": int,
            "at": str,
        },
        pk="seq",
        not_null={"entity", "entity_id"},
    )
    db["audit"].create(
        {
            "id": int,
            "at": str,
            "user_id": int,
            "action": str,
            "entity": str,
            "entity_id": str,
            "detail": str,
        },
        pk="id",
        not_null={"at", "action"},
    )


def _v2(db: sqlite_utils.Database) -> None:
    """Scheduled work: job leases and their run log, spot-check samples, indicator snapshots."""
    db["job_leases"].create(
        {"job": str, "holder": str, "expires_at": str, "last_slot": str},
        pk="job",
        not_null={"holder", "expires_at"},
    )
    db["job_runs"].create(
        {
            "id": int,
            "job": str,
            "holder": str,
            "slot": str,
            "started_at": str,
            "finished_at": str,
            "ok": int,
            "summary": str,
            "error": str,
        },
        pk="id",
        not_null={"job", "holder", "started_at"},
    )
    db["job_runs"].create_index(["job", "id"])
    db["samples"].create(
        {
            "id": int,
            "drawn_at": str,
            "seed": int,
            "rule": str,
            "pool_size": int,
            "picked_count": int,
        },
        pk="id",
        not_null={"drawn_at", "seed", "rule"},
    )
    db["sample_members"].create(
        {
            "sample_id": int,
            "submission_id": str,
            "village_code": str,
            "risk_score": int,
            "picked": int,
            "reason": str,
        },
        pk=("sample_id", "submission_id"),
        foreign_keys=[("sample_id", "samples", "id"), ("submission_id", "submissions", "id")],
        not_null={"picked"},
    )
    db["sample_members"].create_index(["submission_id"])
    db["indicator_snapshots"].create(
        {"month": str, "computed_at": str, "data": str},
        pk="month",
        not_null={"computed_at", "data"},
    )


def _v3(db: sqlite_utils.Database) -> None:
    """Failed logins, so guessing a password is throttled per username."""
    db["login_failures"].create({"username": str, "at": str}, not_null={"username", "at"})
    db["login_failures"].create_index(["username", "at"])


def _v4_desk(db: sqlite_utils.Database) -> None:
    """Server-side desk sessions, and login throttling buckets instead of a failure log.

    A desk session row is what makes a desk cookie valid: deleting it (logout, password reset,
    deactivation, role change) ends the session at once. Only the SHA-256 of the session id is
    kept, as for device tokens. Throttle rows are keyed by a digest of (kind, username, address),
    so guessed usernames never reach the table, and rows are pruned once their window passes.
    """
    db["desk_sessions"].create(
        {
            "id": int,
            "session_hash": str,
            "user_id": int,
            "created_at": str,
            "last_seen_at": str,
        },
        pk="id",
        not_null={"session_hash", "user_id", "created_at", "last_seen_at"},
        foreign_keys=[("user_id", "users", "id")],
    )
    db["desk_sessions"].create_index(["session_hash"], unique=True)
    db["desk_sessions"].create_index(["user_id"])
    db["login_throttle"].create(
        {"key": str, "kind": str, "failures": int, "last_at": float, "next_at": float},
        pk="key",
        not_null={"kind", "failures", "last_at", "next_at"},
    )
    db["login_throttle"].create_index(["kind", "last_at"])
    db["login_failures"].drop()


def _v4_evidence(db: sqlite_utils.Database) -> None:
    """Who holds each photo's bytes, so a photo's hash alone never opens it (PROTOCOL, Photos).

    Photos held before the upgrade are credited to the authors of the submissions that used
    them when they arrived (one of them sent the bytes); a photo with no such submission (clock
    oddities) to every author using it then.
    """
    db["photo_holders"].create(
        {"sha256": str, "user_id": int, "source": str, "at": str},
        pk=("sha256", "user_id"),
        not_null={"source", "at"},
    )
    uses = (
        "SELECT m.sha256, s.author_id, 'upgrade', media.created_at FROM submission_media m"
        " JOIN submissions s ON s.id = m.submission_id JOIN media ON media.sha256 = m.sha256"
        " WHERE s.author_id IS NOT NULL"
    )
    db.execute(f"INSERT OR IGNORE INTO photo_holders {uses} AND s.received_at <= media.created_at")
    db.execute(
        f"INSERT OR IGNORE INTO photo_holders {uses}"
        " AND m.sha256 NOT IN (SELECT sha256 FROM photo_holders)"
    )
    db["flags"].create_index(["submission_id", "code", "photo"])


def _v4(db: sqlite_utils.Database) -> None:
    """Hardening (issue 8): desk sessions and login throttling, photo holders."""
    _v4_desk(db)
    _v4_evidence(db)


MIGRATIONS = {1: _v1, 2: _v2, 3: _v3, 4: _v4}


def _alembic(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = connection
    return config


class SchemaMixin:
    """The schema version of the database, and the upgrade to SCHEMA_VERSION."""

    def table_names(self) -> set[str]:
        return set(inspect(self.conn).get_table_names())

    def legacy_sqlite(self) -> sqlite_utils.Database:
        """sqlite-utils over this SQLite connection: for the schema 1 to 4 migrations only."""
        if self.dialect.name != "sqlite":
            raise RuntimeError("schema 1 to 4 existed only as SQLite files")
        return sqlite_utils.Database(self.conn.connection.dbapi_connection)

    def schema_version(self) -> int:
        if "meta" not in self.table_names():
            return 0
        value = self.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(value) if value else 0

    def migrate(self) -> int:
        """Bring the schema up to SCHEMA_VERSION in place; returns the version reached.

        Server processes starting at once each call this: the schema's lock (PostgreSQL; on
        SQLite the write lock) makes the later ones wait and then find the work done."""
        with self.write():
            self._lock([SCHEMA_KEY])
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema {current} is newer than this program ({SCHEMA_VERSION})"
                )
            if current == 0 and not self.table_names() - {"meta"}:
                metadata.create_all(self.conn)
                command.stamp(_alembic(self.conn), "head")
            else:
                self._upgrade_from(current)
            self.q(
                "INSERT INTO meta (key, value) VALUES ('schema_version', :version)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                version=str(SCHEMA_VERSION),
            )
        return SCHEMA_VERSION

    def _upgrade_from(self, current: int) -> None:
        if current < 4:
            db = self.legacy_sqlite()
            if not db["meta"].exists():
                db["meta"].create({"key": str, "value": str}, pk="key")
            for version in range(current + 1, 5):
                MIGRATIONS[version](db)
        if MigrationContext.configure(self.conn).get_current_revision() is None:
            command.stamp(_alembic(self.conn), REVISIONS[4])
        command.upgrade(_alembic(self.conn), "head")
