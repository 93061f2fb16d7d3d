"""Every SQL statement of villagecheck, behind one small class.

Protocol code (sync/, forms/, media/) never sees SQL; views, CLI commands and scheduler jobs call
methods here. A PostgreSQL backend would be a second class with the same methods. Writes go
through `write()`, which takes SQLite's write lock up front (BEGIN IMMEDIATE) so a transaction
never fails half-way on a busy database, and nests as savepoints.

Writers wait in line. SQLite's own busy handler polls with growing sleeps, so under load a
writer that has waited longest often loses the lock to one that just arrived, and gives up with
"database is locked" after its timeout. So the threads of one process queue first come, first
served for each database file (`WriterQueue`) and only the head of the queue asks SQLite for the
lock (waiting there only for other processes: the CLI, a second server). A writer that cannot
get its turn within `write_wait` seconds raises `DatabaseBusy` before anything is written.
"""

import collections
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator

import sqlite_utils

from ..settings import DEFAULTS

SCHEMA_VERSION = 4
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
TOUCH_WAIT_SECONDS = 1.0  # a token's last-use time is not worth a long wait


class DatabaseBusy(Exception):
    """The database stayed locked longer than the write may wait; nothing was written."""


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy" errors (ours or SQLite's own)."""
    return isinstance(exc, DatabaseBusy) or (
        isinstance(exc, sqlite3.OperationalError)
        and getattr(exc, "sqlite_errorcode", None) is not None
        and exc.sqlite_errorcode & 0xFF in _BUSY_CODES
    )


class WriterQueue:
    """A first-come-first-served lock: the writers of one process to one database file."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._turns: collections.deque[threading.Lock] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._turns.append(turn)
        if turn.acquire(timeout=max(timeout, 0)):
            return True
        with self._mutex:
            if turn in self._turns:
                self._turns.remove(turn)
                return False
        return True  # handed over just as the wait ran out: the turn is ours

    def release(self) -> None:
        with self._mutex:
            if self._turns:
                self._turns.popleft().release()  # hand over; stays held
            else:
                self._held = False


_QUEUES: dict[str, WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


def _writer_queue(path) -> WriterQueue:
    """The one queue of this process for the database file at `path`."""
    if str(path) == ":memory:":
        return WriterQueue()
    with _QUEUES_LOCK:
        return _QUEUES.setdefault(os.path.realpath(path), WriterQueue())


def dumps(value) -> str:
    """Canonical JSON: the same value always gives the same bytes."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def connect(path, *, write_wait: float = DEFAULTS["WRITE_WAIT_SECONDS"]) -> "Storage":
    """Open (creating if needed) the database file with the settings every connection needs.

    `write_wait`: seconds a write may wait in line before `DatabaseBusy`.
    """
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=write_wait
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return Storage(sqlite_utils.Database(conn), _writer_queue(path), write_wait)


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


class Storage:
    """The database of one deployment: records, submissions, the change log and the audit log."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        queue: WriterQueue | None = None,
        write_wait: float = DEFAULTS["WRITE_WAIT_SECONDS"],
    ):
        self.db = db
        self.conn = db.conn
        self.write_wait = write_wait
        self._queue = queue or WriterQueue()
        self._reading = False

    def close(self) -> None:
        self.conn.close()

    # -- transactions and schema -------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, wait: float | None = None) -> Iterator["Storage"]:
        """One atomic write; nested calls become savepoints that roll back on their own.

        Waits its turn behind this process's other writers, then for SQLite's lock, at most
        `wait` seconds in all (default: the connection's `write_wait`); past that it raises
        `DatabaseBusy` having written nothing.
        """
        if self._reading:
            raise RuntimeError("write() inside reading(): the write lock must be taken first")
        if self.conn.in_transaction:
            with self.db.atomic():
                yield self
            return
        wait = self.write_wait if wait is None else wait
        deadline = time.monotonic() + wait
        if not self._queue.acquire(wait):
            raise DatabaseBusy(f"no write turn within {wait:g} s")
        try:
            self._begin_immediate(deadline)
            try:
                yield self
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        finally:
            self._queue.release()

    def _begin_immediate(self, deadline: float) -> None:
        """Take SQLite's write lock, letting its busy handler wait for other processes until the
        deadline."""
        remaining_ms = max(int((deadline - time.monotonic()) * 1000), 0)
        self.conn.execute(f"PRAGMA busy_timeout={remaining_ms}")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise DatabaseBusy(str(exc)) from exc
            raise
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={int(self.write_wait * 1000)}")

    def schema_version(self) -> int:
        if not self.db["meta"].exists():
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Bring the schema up to SCHEMA_VERSION in place; returns the version reached."""
        with self.write():
            if not self.db["meta"].exists():
                self.db["meta"].create({"key": str, "value": str}, pk="key")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema {current} is newer than this program ({SCHEMA_VERSION})"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](self.db)
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(version),),
                )
        return SCHEMA_VERSION

    def is_empty(self) -> bool:
        """True when no village has been loaded yet (the run command then loads the demo)."""
        return self.conn.execute("SELECT count(*) FROM villages").fetchone()[0] == 0

    # -- change log --------------------------------------------------------------------------

    def log_change(self, entity, entity_id, *, village_code=None, user_id=None, at=None) -> int:
        """Append to the change log; the new sequence number is what pull cursors count."""
        cur = self.conn.execute(
            "INSERT INTO changes (entity, entity_id, village_code, user_id, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (entity, entity_id, village_code, user_id, at),
        )
        return cur.lastrowid

    def last_seq(self) -> int:
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]

    def changes_after(self, since: int, village_codes: Iterable[str], user_id: int, limit: int):
        """The next page of changes this user may see, oldest first."""
        return self.conn.execute(
            "SELECT seq, entity, entity_id FROM changes WHERE seq > ?"
            " AND (village_code IS NULL OR village_code IN (SELECT value FROM json_each(?)))"
            " AND (user_id IS NULL OR user_id = ?) ORDER BY seq LIMIT ?",
            (since, json.dumps(sorted(village_codes)), user_id, limit),
        ).fetchall()

    def audit(self, action, *, at, user_id=None, entity=None, entity_id=None, detail=None):
        """Append to the audit log (who did what, when); its own write when not in one."""
        with self.write():
            self.conn.execute(
                "INSERT INTO audit (at, user_id, action, entity, entity_id, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (at, user_id, action, entity, entity_id, dumps(detail) if detail else None),
            )

    def audit_entries(self, *, entity_id=None, limit=100) -> list[dict]:
        where, params = ("WHERE entity_id = ?", [entity_id]) if entity_id else ("", [])
        return list(
            self.db.query(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        )

    # -- villages ----------------------------------------------------------------------------

    def upsert_villages(self, rows: list[dict], *, at: str) -> None:
        """Insert or update villages, each a change every phone of that village will pull."""
        with self.write():
            for row in rows:
                self.db["villages"].upsert(row, pk="code")
                self.log_change("village", row["code"], village_code=row["code"], at=at)

    def village(self, code: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM villages WHERE code = ?", [code]))
        return rows[0] if rows else None

    def villages(self, codes: Iterable[str] | None = None) -> list[dict]:
        if codes is None:
            return list(self.db.query("SELECT * FROM villages ORDER BY code"))
        return list(
            self.db.query(
                "SELECT * FROM villages WHERE code IN (SELECT value FROM json_each(?))"
                " ORDER BY code",
                [json.dumps(sorted(codes))],
            )
        )

    def village_codes_where(self, *, township=None, county=None) -> list[str]:
        """Village codes of a township and/or county (a supervisor's or admin's scope)."""
        sql, params = "SELECT code FROM villages WHERE 1=1", []
        if township:
            sql += " AND township = ?"
            params.append(township)
        if county:
            sql += " AND (county = ? OR substr(code, 1, length(?)) = ?)"
            params += [county, county, county]
        return [r[0] for r in self.conn.execute(sql + " ORDER BY code", params)]

    # -- users, assignments and tokens -------------------------------------------------------

    def create_user(
        self,
        *,
        username,
        password_hash,
        role,
        display_name,
        at,
        scope_township=None,
        scope_county=None,
    ) -> int:
        with self.write():
            cur = self.conn.execute(
                "INSERT INTO users (username, display_name, role, password_hash,"
                " scope_township, scope_county, active, created_at) VALUES (?,?,?,?,?,?,1,?)",
                (username, display_name, role, password_hash, scope_township, scope_county, at),
            )
            self.audit(
                "user.create", at=at, entity="user", entity_id=username, detail={"role": role}
            )
            return cur.lastrowid

    def user(self, *, id=None, username=None) -> dict | None:
        column, value = ("id", id) if id is not None else ("username", username)
        rows = list(self.db.query(f"SELECT * FROM users WHERE {column} = ?", [value]))
        return rows[0] if rows else None

    def set_password_hash(
        self, user_id: int, password_hash: str, *, at: str, revoke_tokens: bool = True
    ) -> int:
        """Set a new password and end the user's desk sessions; by default also revoke every
        device token (whoever knew the old password may have logged a phone in). Returns the
        number of tokens revoked."""
        with self.write():
            self.conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )
            sessions = self.end_desk_sessions_of(user_id)
            revoked = self.revoke_tokens_of(user_id, at=at) if revoke_tokens else 0
            self.audit(
                "user.password",
                at=at,
                entity="user",
                entity_id=str(user_id),
                detail={"tokens_revoked": revoked, "desk_sessions_ended": sessions},
            )
            return revoked

    def assign(self, user_id: int, village_codes: Iterable[str], *, at: str) -> None:
        with self.write():
            for code in village_codes:
                self.conn.execute(
                    "INSERT OR IGNORE INTO assignments (user_id, village_code) VALUES (?, ?)",
                    (user_id, code),
                )
            self.audit(
                "user.assign",
                at=at,
                entity="user",
                entity_id=str(user_id),
                detail={"villages": sorted(village_codes)},
            )

    def assigned_villages(self, user_id: int) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT village_code FROM assignments WHERE user_id = ? ORDER BY village_code",
                (user_id,),
            )
        ]

    def create_token(self, *, user_id, token_hash, device_id, label, at) -> int:
        with self.write():
            cur = self.conn.execute(
                "INSERT INTO tokens (user_id, token_hash, device_id, label, created_at,"
                " last_used_at) VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, token_hash, device_id, label, at, at),
            )
            self.audit(
                "token.create",
                at=at,
                user_id=user_id,
                entity="token",
                entity_id=str(cur.lastrowid),
                detail={"device_id": device_id},
            )
            return cur.lastrowid

    def token(self, token_hash: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM tokens WHERE token_hash = ?", [token_hash]))
        return rows[0] if rows else None

    def touch_token(self, token_id: int, at: str) -> None:
        """Record use, at most once a minute per token, so reads stay cheap.

        An UPDATE takes the write lock even when it changes no row, so the once-a-minute test is
        a read first; and the touch is best-effort: a pull never waits behind a queue of pushes
        for it (the minute after will do).
        """
        stale = "SELECT 1 FROM tokens WHERE id = ? AND last_used_at < ?"
        if not self.conn.execute(stale, (token_id, at[:16])).fetchone():
            return
        with contextlib.suppress(DatabaseBusy), self.write(wait=TOUCH_WAIT_SECONDS):
            self.conn.execute(
                "UPDATE tokens SET last_used_at = ? WHERE id = ? AND last_used_at < ?",
                (at, token_id, at[:16]),
            )

    def tokens_of(self, user_id: int) -> list[dict]:
        return list(
            self.db.query(
                "SELECT id, device_id, label, created_at, last_used_at, revoked_at FROM tokens"
                " WHERE user_id = ? ORDER BY id",
                [user_id],
            )
        )

    def revoke_token(self, token_id: int, *, user_id: int, by: int, at: str) -> bool:
        """Revoke one of a user's tokens; False when there is no such live token."""
        with self.write():
            cur = self.conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND user_id = ?"
                " AND revoked_at IS NULL",
                (at, token_id, user_id),
            )
            if cur.rowcount:
                self.audit(
                    "token.revoke", at=at, user_id=by, entity="token", entity_id=str(token_id)
                )
            return cur.rowcount == 1

    def throttle_rows(self, keys: Iterable[str]) -> dict[str, dict]:
        """The login throttle buckets with these keys (missing ones are absent)."""
        return {
            r["key"]: r
            for r in self.db.query(
                "SELECT * FROM login_throttle WHERE key IN (SELECT value FROM json_each(?))",
                [json.dumps(sorted(keys))],
            )
        }

    def save_throttle(self, key: str, kind: str, *, failures: int, last_at: float, next_at: float):
        self.conn.execute(
            "INSERT OR REPLACE INTO login_throttle (key, kind, failures, last_at, next_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, kind, failures, last_at, next_at),
        )

    def delete_throttle(self, key: str) -> None:
        self.conn.execute("DELETE FROM login_throttle WHERE key = ?", (key,))

    def prune_throttle(self, *, now: float, failures_before: float, good_before: float) -> None:
        """Forget failure buckets quiet since `failures_before`, and old known-good logins."""
        self.conn.execute(
            "DELETE FROM login_throttle WHERE kind != 'good' AND last_at < ? AND next_at <= ?",
            (failures_before, now),
        )
        self.conn.execute(
            "DELETE FROM login_throttle WHERE kind = 'good' AND last_at < ?", (good_before,)
        )

    def login_alerts(self, since: str, limit: int = 20) -> list[dict]:
        """Recent `login_throttled` audit entries, newest first (shown to admins)."""
        return list(
            self.db.query(
                "SELECT at, entity_id AS username, detail FROM audit"
                " WHERE action = 'login_throttled' AND at >= ? ORDER BY id DESC LIMIT ?",
                [since, limit],
            )
        )

    # -- desk sessions (the supervisors' and admins' pages) ------------------------------------

    def create_desk_session(self, session_hash: str, user_id: int, *, at: str) -> int:
        with self.write():
            cur = self.conn.execute(
                "INSERT INTO desk_sessions (session_hash, user_id, created_at, last_seen_at)"
                " VALUES (?, ?, ?, ?)",
                (session_hash, user_id, at, at),
            )
            self.audit("web.login", at=at, user_id=user_id, entity="user", entity_id=str(user_id))
            return cur.lastrowid

    def desk_session(self, session_hash: str) -> dict | None:
        rows = list(
            self.db.query("SELECT * FROM desk_sessions WHERE session_hash = ?", [session_hash])
        )
        return rows[0] if rows else None

    def touch_desk_session(self, session_id: int, at: str) -> None:
        """Record activity (callers touch at most once a minute, so page loads stay cheap)."""
        with self.write():
            self.conn.execute(
                "UPDATE desk_sessions SET last_seen_at = ? WHERE id = ?", (at, session_id)
            )

    def end_desk_session(self, session_hash: str) -> None:
        with self.write():
            self.conn.execute("DELETE FROM desk_sessions WHERE session_hash = ?", (session_hash,))

    def end_desk_sessions_of(self, user_id: int) -> int:
        """End every desk session of a user (password reset, deactivation, role change)."""
        return self.conn.execute("DELETE FROM desk_sessions WHERE user_id = ?", (user_id,)).rowcount

    def prune_desk_sessions(self, *, idle_before: str, created_before: str) -> None:
        with self.write():
            self.conn.execute(
                "DELETE FROM desk_sessions WHERE last_seen_at < ? OR created_at < ?",
                (idle_before, created_before),
            )

    def revoke_tokens_of(self, user_id: int, *, at: str) -> int:
        """Revoke every live device token of a user; returns how many there were."""
        return self.conn.execute(
            "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            (at, user_id),
        ).rowcount

    def record_device(self, *, device_id, user_id, clock, skew_ms, at) -> None:
        """Remember each device's latest clock and skew (set at every push)."""
        self.conn.execute(
            "INSERT INTO devices (device_id, user_id, last_seen_at, last_clock, skew_ms)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET"
            " user_id = excluded.user_id, last_seen_at = excluded.last_seen_at,"
            " last_clock = max(coalesce(last_clock, ''), excluded.last_clock),"
            " skew_ms = excluded.skew_ms",
            (device_id, user_id, at, clock, skew_ms),
        )

    def device(self, device_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM devices WHERE device_id = ?", [device_id]))
        return rows[0] if rows else None

    # -- forms -------------------------------------------------------------------------------

    def publish_form(self, definition: dict, sha256: str, *, at: str) -> bool:
        """Publish a form version; True if new. A published version never changes."""
        key = (definition["id"], definition["version"])
        row = self.conn.execute(
            "SELECT sha256 FROM forms WHERE form_id = ? AND version = ?", key
        ).fetchone()
        if row:
            if row[0] != sha256:
                raise ValueError(f"form {key[0]} v{key[1]} is published and cannot change")
            return False
        with self.write():
            self.conn.execute(
                "INSERT INTO forms (form_id, version, definition, sha256, published_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (*key, dumps(definition), sha256, at),
            )
            self.log_change("form", f"{key[0]}@{key[1]}", at=at)
        return True

    def form_definition(self, form_id: str, version: int) -> dict | None:
        row = self.conn.execute(
            "SELECT definition FROM forms WHERE form_id = ? AND version = ?", (form_id, version)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def form_definitions(self, keys: Iterable[str]) -> list[dict]:
        """Definitions by "id@version" keys, as the change log names them."""
        return [
            json.loads(r[0])
            for r in self.conn.execute(
                "SELECT definition FROM forms WHERE form_id || '@' || version"
                " IN (SELECT value FROM json_each(?)) ORDER BY form_id, version",
                (json.dumps(list(keys)),),
            )
        ]

    def forms(self) -> list[dict]:
        return [
            json.loads(r[0])
            for r in self.conn.execute("SELECT definition FROM forms ORDER BY form_id, version")
        ]

    # -- records: facilities and monthly tasks -----------------------------------------------

    def insert_facility(self, row: dict, *, at: str) -> None:
        self.conn.execute(
            "INSERT INTO facilities (id, village_code, kind, name, lat, lon, state, created_by,"
            " created_clock, created_at, content_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                row["id"],
                row["village_code"],
                row["kind"],
                row["name"],
                row.get("lat"),
                row.get("lon"),
                dumps(row["state"]),
                row.get("created_by"),
                row.get("created_clock"),
                at,
                row.get("content_hash"),
            ),
        )
        self.log_change("facility", row["id"], village_code=row["village_code"], at=at)

    def facility(self, facility_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM facilities WHERE id = ?", [facility_id]))
        return _with_state(rows[0]) if rows else None

    def facilities_by_ids(self, ids: Iterable[str]) -> list[dict]:
        return [
            _with_state(r)
            for r in self.db.query(
                "SELECT * FROM facilities WHERE id IN (SELECT value FROM json_each(?))",
                [json.dumps(list(ids))],
            )
        ]

    def tasks_by_ids(self, ids: Iterable[str]) -> list[dict]:
        return [
            _task(r)
            for r in self.db.query(
                "SELECT * FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
                [json.dumps(list(ids))],
            )
        ]

    def tasks(self, village_code: str, month: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM tasks WHERE village_code = ?", [village_code]
        if month:
            sql += " AND month = ?"
            params.append(month)
        return [_task(r) for r in self.db.query(sql + " ORDER BY month, id", params)]

    def facilities(self, village_code: str) -> list[dict]:
        return [
            _with_state(r)
            for r in self.db.query(
                "SELECT * FROM facilities WHERE village_code = ? ORDER BY kind, name",
                [village_code],
            )
        ]

    def insert_task(self, row: dict, *, at: str) -> bool:
        """Insert a monthly task unless it exists; True if inserted."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO tasks (id, village_code, month, template, title, due_on,"
            " state, created_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                row["id"],
                row["village_code"],
                row["month"],
                row["template"],
                dumps(row["title"]),
                row.get("due_on"),
                dumps(row.get("state", {})),
                at,
            ),
        )
        if cur.rowcount:
            self.log_change("task", row["id"], village_code=row["village_code"], at=at)
        return cur.rowcount == 1

    def task(self, task_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM tasks WHERE id = ?", [task_id]))
        return _task(rows[0]) if rows else None

    def record(self, record_type: str, record_id: str) -> dict | None:
        """A facility or a monthly task, by the kind of record a form targets."""
        return self.task(record_id) if record_type == "task" else self.facility(record_id)

    def set_record_state(
        self, record_type: str, record_id: str, state: dict, *, village_code: str, at: str
    ) -> None:
        table = "tasks" if record_type == "task" else "facilities"
        self.conn.execute(f"UPDATE {table} SET state = ? WHERE id = ?", (dumps(state), record_id))
        self.log_change(record_type, record_id, village_code=village_code, at=at)

    # -- submissions, observations, conflicts ------------------------------------------------

    def submission_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """content_hash of each already-stored submission among these ids."""
        return dict(
            self.conn.execute(
                "SELECT id, content_hash FROM submissions"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)),),
            ).fetchall()
        )

    def facility_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        return dict(
            self.conn.execute(
                "SELECT id, coalesce(content_hash, '') FROM facilities"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)),),
            ).fetchall()
        )

    def insert_submission(self, row: dict, photos: list[dict]) -> None:
        self.conn.execute(
            "INSERT INTO submissions (id, form_id, form_version, record_id, record_type,"
            " village_code, author_id, device_id, clock, observed_at, received_at, answers,"
            " content_hash, state, skew_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                row["id"],
                row["form_id"],
                row["form_version"],
                row["record_id"],
                row["record_type"],
                row["village_code"],
                row["author_id"],
                row["device_id"],
                row["clock"],
                row["observed_at"],
                row["received_at"],
                dumps(row["answers"]),
                row["content_hash"],
                row["state"],
                row.get("skew_ms"),
            ),
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO submission_media (submission_id, field, sha256, captured_at,"
            " position) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    row["id"],
                    p["field"],
                    p["sha256"],
                    p.get("captured_at"),
                    dumps(p["position"]) if p.get("position") else None,
                )
                for p in photos
            ],
        )

    def submission(self, submission_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM submissions WHERE id = ?", [submission_id]))
        if not rows:
            return None
        row = rows[0]
        row["answers"] = json.loads(row["answers"])
        return row

    def submissions_of_record(self, record_id: str) -> list[dict]:
        """A record's history: every submission about it, newest observation first.

        Ordered by the observation's clock, which differs from the clock sent when the server
        re-stamped a far-ahead one (server/push.py).
        """
        rows = self.db.query(
            "SELECT s.id, s.form_id, s.form_version, s.author_id, s.device_id, s.clock,"
            " s.observed_at, s.received_at, s.state, s.answers FROM submissions s"
            " LEFT JOIN observations o ON o.id = s.id WHERE s.record_id = ?"
            " ORDER BY coalesce(o.clock, s.clock) DESC",
            [record_id],
        )
        return [{**r, "answers": json.loads(r["answers"])} for r in rows]

    def submission_photo_hashes(self, submission_id: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT sha256 FROM submission_media WHERE submission_id = ?",
                (submission_id,),
            )
        ]

    def missing_media(self, hashes: Iterable[str]) -> list[str]:
        """Which of these photo hashes the server does not hold yet, sorted."""
        wanted = sorted(set(hashes))
        if not wanted:
            return []
        held = {
            r[0]
            for r in self.conn.execute(
                "SELECT sha256 FROM media WHERE sha256 IN (SELECT value FROM json_each(?))",
                (json.dumps(wanted),),
            )
        }
        return [h for h in wanted if h not in held]

    def photos_without_media(self) -> list[str]:
        """Photos submissions use that have no media row: not uploaded yet, or held but not
        processed (a crash between the upload and its row; the photo store tells which)."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT sm.sha256 FROM submission_media sm"
                " LEFT JOIN media m ON m.sha256 = sm.sha256 WHERE m.sha256 IS NULL"
                " ORDER BY sm.sha256"
            )
        ]

    def received_with_all_photos(self) -> list[str]:
        """Submissions still `received` although every photo they use has its media row."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT s.id FROM submissions s WHERE s.state = 'received' AND NOT EXISTS"
                " (SELECT 1 FROM submission_media sm LEFT JOIN media m ON m.sha256 = sm.sha256"
                " WHERE sm.submission_id = s.id AND m.sha256 IS NULL) ORDER BY s.id"
            )
        ]

    def insert_observation(self, obs: dict) -> None:
        self.conn.execute(
            "INSERT INTO observations (id, record_id, clock, wall_ms, fields, base)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                obs["id"],
                obs["record_id"],
                obs["clock"],
                obs["wall_ms"],
                dumps(obs["fields"]),
                dumps(obs["base"]),
            ),
        )

    def observations_between(self, record_id: str, lo_wall_ms: int, hi_wall_ms: int):
        """Observations of a record whose wall time lies in a window (conflict candidates)."""
        return [
            _observation_row(r)
            for r in self.conn.execute(
                "SELECT id, record_id, clock, fields, base FROM observations"
                " WHERE record_id = ? AND wall_ms BETWEEN ? AND ? ORDER BY clock",
                (record_id, lo_wall_ms, hi_wall_ms),
            )
        ]

    def observations_from(self, record_id: str, clock: str):
        """Observations of a record at or after a clock (candidates to resolve a conflict)."""
        return [
            _observation_row(r)
            for r in self.conn.execute(
                "SELECT id, record_id, clock, fields, base FROM observations"
                " WHERE record_id = ? AND clock >= ? ORDER BY clock",
                (record_id, clock),
            )
        ]

    def observation_clocks(self, ids: Iterable[str]) -> dict[str, str]:
        return dict(
            self.conn.execute(
                "SELECT id, clock FROM observations WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)),),
            ).fetchall()
        )

    def newest_clock(self, *, max_wall_ms: int) -> str | None:
        """The newest observation clock whose wall time is at most `max_wall_ms`.

        Encoded clocks start with 13 digits of wall time, so the bound is a string comparison
        that the index on `clock` answers.
        """
        if max_wall_ms >= 10**13 - 1:
            return self.conn.execute("SELECT max(clock) FROM observations").fetchone()[0]
        bound = f"{max(max_wall_ms, -1) + 1:013d}"
        return self.conn.execute(
            "SELECT max(clock) FROM observations WHERE clock < ?", (bound,)
        ).fetchone()[0]

    def open_conflicts_of(self, record_id: str) -> list[dict]:
        return [
            _conflict(r)
            for r in self.db.query(
                "SELECT * FROM conflicts WHERE record_id = ? AND resolved_by IS NULL",
                [record_id],
            )
        ]

    def insert_conflict(self, row: dict, *, at: str) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO conflicts (id, record_id, field, a, b, a_value, b_value,"
            " winner, resolved_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                row["id"],
                row["record_id"],
                row["field"],
                row["a"],
                row["b"],
                dumps(row["a_value"]),
                dumps(row["b_value"]),
                row["winner"],
                row.get("resolved_by"),
                at,
            ),
        )
        return cur.rowcount == 1

    def resolve_conflict(self, conflict_id: str, resolved_by: str) -> None:
        self.conn.execute(
            "UPDATE conflicts SET resolved_by = ? WHERE id = ? AND resolved_by IS NULL",
            (resolved_by, conflict_id),
        )

    def conflicts(self, *, record_id: str | None = None) -> list[dict]:
        where, params = ("WHERE record_id = ?", [record_id]) if record_id else ("", [])
        return [
            _conflict(r)
            for r in self.db.query(f"SELECT * FROM conflicts {where} ORDER BY id", params)
        ]

    # -- reviews -----------------------------------------------------------------------------

    def add_review(self, *, submission_id, decision, state, reason, reviewer_id, author_id, at):
        """Record a supervisor's decision; it reaches the author's phone through pull."""
        with self.write():
            self.conn.execute(
                "INSERT INTO reviews (submission_id, decision, reason, reviewer_id, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (submission_id, decision, reason, reviewer_id, at),
            )
            self.conn.execute(
                "UPDATE submissions SET state = ? WHERE id = ?", (state, submission_id)
            )
            self.audit(
                f"review.{decision}",
                at=at,
                user_id=reviewer_id,
                entity="submission",
                entity_id=submission_id,
                detail={"reason": reason},
            )
            self.log_change("review", submission_id, user_id=author_id, at=at)

    def latest_reviews(self, submission_ids: Iterable[str]) -> list[dict]:
        """The newest review of each of these submissions, with the reviewer's name."""
        return list(
            self.db.query(
                "SELECT r.submission_id, s.state, r.decision, r.reason, r.at,"
                " u.display_name AS reviewer FROM reviews r"
                " JOIN submissions s ON s.id = r.submission_id"
                " JOIN users u ON u.id = r.reviewer_id"
                " WHERE r.id IN (SELECT max(id) FROM reviews WHERE submission_id IN"
                " (SELECT value FROM json_each(?)) GROUP BY submission_id)"
                " ORDER BY r.submission_id",
                [json.dumps(list(submission_ids))],
            )
        )

    # -- media and evidence (photo pipeline) ---------------------------------------------

    def insert_media(self, row: dict) -> None:
        """Record a photo the server now holds, with its EXIF facts and perceptual hashes."""
        self.conn.execute(
            "INSERT OR IGNORE INTO media (sha256, size, mime, width, height, exif, phash,"
            " crop_hashes, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                row["sha256"],
                row["size"],
                row["mime"],
                row["width"],
                row["height"],
                dumps(row["exif"]),
                row["phash"],
                dumps(row["crop_hashes"]),
                row["created_at"],
            ),
        )

    def media(self, sha256: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM media WHERE sha256 = ?", [sha256]))
        if not rows:
            return None
        row = rows[0]
        row["exif"] = json.loads(row["exif"]) if row["exif"] else None
        row["crop_hashes"] = json.loads(row["crop_hashes"]) if row["crop_hashes"] else []
        return row

    def media_hashes_after(self, rowid: int) -> list[tuple]:
        """(rowid, sha256, phash hex, crop hashes JSON) of photos added after `rowid`."""
        return self.conn.execute(
            "SELECT rowid, sha256, phash, crop_hashes FROM media WHERE rowid > ? AND phash"
            " IS NOT NULL ORDER BY rowid",
            (rowid,),
        ).fetchall()

    def photo_in_villages(self, sha256: str, village_codes: Iterable[str]) -> bool:
        """Whether a submission in one of these villages uses this photo (who may upload it)."""
        return (
            self.conn.execute(
                "SELECT 1 FROM submission_media m JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 = ? AND s.village_code IN (SELECT value FROM json_each(?))"
                " LIMIT 1",
                (sha256, json.dumps(sorted(village_codes))),
            ).fetchone()
            is not None
        )

    def record_uploader(self, sha256: str, user_id: int, *, at: str) -> None:
        """This user sent the bytes of this photo (the upload completed and matched its hash)."""
        self.record_holder(sha256, user_id, source="upload", at=at)

    def record_holder(self, sha256: str, user_id: int, *, source: str, at: str) -> None:
        with self.write():
            self.conn.execute(
                "INSERT OR IGNORE INTO photo_holders (sha256, user_id, source, at)"
                " VALUES (?,?,?,?)",
                (sha256, user_id, source, at),
            )

    def credit_unheld_photo(self, sha256: str, *, at: str) -> None:
        """A photo processed with no holder (the server died between its upload completing and
        the uploader being recorded): credit the authors of the submissions already using it,
        as the schema 4 upgrade does, so the one who sent it can still be read."""
        with self.write():
            self.conn.execute(
                "INSERT OR IGNORE INTO photo_holders (sha256, user_id, source, at)"
                " SELECT m.sha256, s.author_id, 'recovered', ? FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 = ? AND s.author_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM photo_holders WHERE sha256 = ?)",
                (at, sha256, sha256),
            )

    def photos_held_by(self, user_id: int, hashes: Iterable[str]) -> set[str]:
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT sha256 FROM photo_holders WHERE user_id = ?"
                " AND sha256 IN (SELECT value FROM json_each(?))",
                (user_id, json.dumps(sorted(set(hashes)))),
            )
        }

    def readable_photos(self, hashes: Iterable[str], village_codes: Iterable[str]) -> set[str]:
        """Which photos these villages may see: used there by a submission whose author holds
        the photo's bytes (uploaded them, or could already see the photo when submitting)."""
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT m.sha256 FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " JOIN photo_holders h ON h.sha256 = m.sha256 AND h.user_id = s.author_id"
                " WHERE m.sha256 IN (SELECT value FROM json_each(?))"
                " AND s.village_code IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(set(hashes))), json.dumps(sorted(village_codes))),
            )
        }

    def photo_readable(self, sha256: str, village_codes: Iterable[str]) -> bool:
        return bool(self.readable_photos([sha256], village_codes))

    def submissions_using(self, hashes: Iterable[str]) -> list[dict]:
        """Every use of these photos: sha256, submission, its record and state."""
        return list(
            self.db.query(
                "SELECT m.sha256, m.submission_id, s.record_id, s.state FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 IN (SELECT value FROM json_each(?)) ORDER BY m.submission_id",
                [json.dumps(sorted(set(hashes)))],
            )
        )

    def uses_elsewhere(
        self, hashes: Iterable[str], *, submission_id: str, record_id: str | None = None
    ) -> set[str]:
        """Which of these photos a judged submission other than this one uses (about another
        record than `record_id`, when given). One probe per photo, however often it is used."""
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT j.value FROM json_each(?) j WHERE EXISTS (SELECT 1 FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id WHERE m.sha256 = j.value"
                " AND m.submission_id != ? AND s.state != 'received'"
                " AND (? IS NULL OR s.record_id != ?))",
                (json.dumps(sorted(set(hashes))), submission_id, record_id, record_id),
            )
        }

    def unflagged_uses(
        self, hashes: Iterable[str], code: str, *, submission_id: str, record_id=None
    ) -> list[tuple[str, str]]:
        """(submission, photo) of judged uses of these photos, other than this submission (and
        about another record than `record_id`, when given), that lack flag `code` on it."""
        return self.conn.execute(
            "SELECT m.submission_id, m.sha256 FROM submission_media m"
            " JOIN submissions s ON s.id = m.submission_id"
            " WHERE m.sha256 IN (SELECT value FROM json_each(?)) AND m.submission_id != ?"
            " AND s.state != 'received' AND (? IS NULL OR s.record_id != ?)"
            " AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.submission_id = m.submission_id"
            " AND f.code = ? AND f.photo = m.sha256)"
            " GROUP BY m.submission_id, m.sha256 ORDER BY m.submission_id, m.sha256",
            (json.dumps(sorted(set(hashes))), submission_id, record_id, record_id, code),
        ).fetchall()

    def judged_uses(
        self, hashes: Iterable[str], *, submission_id: str, record_id: str | None = None
    ) -> list[dict]:
        """Judged uses of these photos by other submissions (about another record than
        `record_id`, when given), with the village and township of each."""
        return list(
            self.db.query(
                "SELECT DISTINCT m.sha256, m.submission_id, s.record_id, s.village_code,"
                " v.township FROM submission_media m JOIN submissions s ON s.id = m.submission_id"
                " LEFT JOIN villages v ON v.code = s.village_code"
                " WHERE m.sha256 IN (SELECT value FROM json_each(?)) AND m.submission_id != ?"
                " AND s.state != 'received' AND (? IS NULL OR s.record_id != ?)"
                " ORDER BY m.sha256, m.submission_id",
                [json.dumps(sorted(set(hashes))), submission_id, record_id, record_id],
            )
        )

    def add_flags(self, flags: list[dict]) -> None:
        """Add flags to submissions already judged (the other side of a new reuse)."""
        self.conn.executemany(
            "INSERT INTO flags (submission_id, code, photo, figures, message)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (
                    f["submission_id"],
                    f["code"],
                    f["photo"],
                    dumps(f["figures"]),
                    dumps(f["message"]),
                )
                for f in flags
            ],
        )

    def flag_codes(self, submission_ids: Iterable[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for sid, code in self.conn.execute(
            "SELECT submission_id, code FROM flags"
            " WHERE submission_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(submission_ids))),),
        ):
            out.setdefault(sid, set()).add(code)
        return out

    def set_risk_scores(self, scores: dict[str, int]) -> None:
        self.conn.executemany(
            "UPDATE submissions SET risk_score = ? WHERE id = ?",
            [(score, sid) for sid, score in scores.items()],
        )

    def evidence_inputs(self, submission_id: str) -> dict | None:
        """What the evidence checks need about one submission: its photos and its record."""
        sub = self.conn.execute(
            "SELECT s.id, s.record_id, s.record_type, s.observed_at, s.skew_ms, s.state,"
            " s.author_id, f.lat, f.lon FROM submissions s"
            " LEFT JOIN facilities f ON f.id = s.record_id"
            " WHERE s.id = ?",
            (submission_id,),
        ).fetchone()
        if sub is None:
            return None
        photos = list(
            self.db.query(
                "SELECT m.field, m.sha256, m.captured_at, m.position, media.exif, media.phash,"
                " media.crop_hashes FROM submission_media m"
                " LEFT JOIN media ON media.sha256 = m.sha256 WHERE m.submission_id = ?"
                " ORDER BY m.field, m.sha256",
                [submission_id],
            )
        )
        for photo in photos:
            for key in ("position", "exif", "crop_hashes"):
                photo[key] = json.loads(photo[key]) if photo[key] else None
        keys = (
            "id",
            "record_id",
            "record_type",
            "observed_at",
            "skew_ms",
            "state",
            "author_id",
            "lat",
            "lon",
        )
        return {**dict(zip(keys, sub, strict=True)), "photos": photos}

    def set_evidence(
        self, submission_id: str, *, flags: list[dict], risk_score: int, state: str | None, at: str
    ) -> None:
        """Replace a submission's evidence flags and risk score (and its state if given)."""
        self.conn.execute("DELETE FROM flags WHERE submission_id = ?", (submission_id,))
        self.conn.executemany(
            "INSERT INTO flags (submission_id, code, photo, figures, message)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (submission_id, f["code"], f.get("photo"), dumps(f["figures"]), dumps(f["message"]))
                for f in flags
            ],
        )
        if state:
            self.conn.execute(
                "UPDATE submissions SET risk_score = ?, state = ?, completed_at = ? WHERE id = ?",
                (risk_score, state, at, submission_id),
            )
        else:
            self.conn.execute(
                "UPDATE submissions SET risk_score = ? WHERE id = ?", (risk_score, submission_id)
            )

    def flags_of(self, submission_id: str) -> list[dict]:
        rows = self.db.query(
            "SELECT code, photo, figures, message FROM flags WHERE submission_id = ?"
            " ORDER BY rowid",
            [submission_id],
        )
        return [
            {**r, "figures": json.loads(r["figures"]), "message": json.loads(r["message"])}
            for r in rows
        ]

    # -- scheduler, monthly tasks, samples, indicators, exports --------------------------

    def take_job_lease(self, job: str, holder: str, *, now: str, until: str, slot=None) -> bool:
        """Take a job's lease in one atomic upsert; False if another holder's lease is live.

        With a `slot` (the scheduled occurrence, e.g. "2026-12-01") the lease is also refused
        when that slot, or a later one, has already been run to completion, so two processes
        whose schedulers fire a few seconds apart still run the occurrence once.
        """
        with self.write():
            cur = self.conn.execute(
                "INSERT INTO job_leases (job, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT(job) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at"
                " WHERE job_leases.expires_at <= ? AND (? IS NULL"
                " OR job_leases.last_slot IS NULL OR job_leases.last_slot < ?)",
                (job, holder, until, now, slot, slot),
            )
            return cur.rowcount == 1

    def release_job_lease(self, job: str, holder: str, *, now: str, slot=None) -> None:
        """Free the lease at once; a completed `slot` is remembered so it never runs again."""
        with self.write():
            self.conn.execute(
                "UPDATE job_leases SET expires_at = ?, last_slot = coalesce(?, last_slot)"
                " WHERE job = ? AND holder = ?",
                (now, slot, job, holder),
            )

    def job_leases(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM job_leases ORDER BY job"))

    def start_job_run(self, job: str, holder: str, *, slot, at: str) -> int:
        with self.write():
            cur = self.conn.execute(
                "INSERT INTO job_runs (job, holder, slot, started_at) VALUES (?, ?, ?, ?)",
                (job, holder, slot, at),
            )
            return cur.lastrowid

    def finish_job_run(self, run_id: int, *, ok: bool, summary, error, at: str) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE job_runs SET finished_at = ?, ok = ?, summary = ?, error = ? WHERE id = ?",
                (at, int(ok), dumps(summary) if summary is not None else None, error, run_id),
            )

    def job_runs(self, job: str | None = None, limit: int = 50) -> list[dict]:
        where, params = ("WHERE job = ?", [job]) if job else ("", [])
        rows = self.db.query(
            f"SELECT * FROM job_runs {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [{**r, "summary": json.loads(r["summary"]) if r["summary"] else None} for r in rows]

    def tasks_not_done_due_before(self, day: str) -> list[dict]:
        """Monthly tasks due before `day` (YYYY-MM-DD) and neither done nor already overdue.

        A task created after its due date (a village added late in the month) is left alone."""
        return list(
            self.db.query(
                "SELECT id, village_code, due_on, json_extract(state, '$.status.clock')"
                " AS status_clock FROM tasks WHERE due_on < ? AND coalesce(json_extract(state,"
                " '$.status.value'), 'not_started') NOT IN ('done', 'overdue')"
                " AND (created_at IS NULL OR substr(created_at, 1, 10) <= due_on) ORDER BY id",
                [day],
            )
        )

    def sample_pool(self) -> list[dict]:
        """Complete, unreviewed submissions that no earlier draw has considered."""
        return list(
            self.db.query(
                "SELECT s.id, s.village_code, s.risk_score FROM submissions s"
                " WHERE s.state = 'complete' AND NOT EXISTS"
                " (SELECT 1 FROM sample_members m WHERE m.submission_id = s.id) ORDER BY s.id"
            )
        )

    def save_sample(self, *, drawn_at: str, seed: int, rule: dict, members: list[dict]) -> int:
        """Store a draw: its seed and rule, and every candidate with whether it was picked."""
        with self.write():
            picked = sum(1 for m in members if m["picked"])
            cur = self.conn.execute(
                "INSERT INTO samples (drawn_at, seed, rule, pool_size, picked_count)"
                " VALUES (?, ?, ?, ?, ?)",
                (drawn_at, seed, dumps(rule), len(members), picked),
            )
            sample_id = cur.lastrowid
            self.conn.executemany(
                "INSERT INTO sample_members (sample_id, submission_id, village_code, risk_score,"
                " picked, reason) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        sample_id,
                        m["id"],
                        m["village_code"],
                        m["risk_score"],
                        int(m["picked"]),
                        m["reason"],
                    )
                    for m in members
                ],
            )
            self.audit(
                "sample.draw",
                at=drawn_at,
                entity="sample",
                entity_id=str(sample_id),
                detail={"seed": seed, "pool": len(members), "picked": picked},
            )
            return sample_id

    def sample(self, sample_id: int) -> dict | None:
        rows = list(self.db.query("SELECT * FROM samples WHERE id = ?", [sample_id]))
        if not rows:
            return None
        sample = {**rows[0], "rule": json.loads(rows[0]["rule"])}
        sample["members"] = list(
            self.db.query(
                "SELECT submission_id AS id, village_code, risk_score, picked, reason"
                " FROM sample_members WHERE sample_id = ? ORDER BY submission_id",
                [sample_id],
            )
        )
        return sample

    def samples(self, limit: int = 50) -> list[dict]:
        rows = self.db.query("SELECT * FROM samples ORDER BY id DESC LIMIT ?", [limit])
        return [{**r, "rule": json.loads(r["rule"])} for r in rows]

    def sample_queue(self, village_codes: Iterable[str], limit: int = 500) -> list[dict]:
        """Picked submissions in these villages still waiting for a supervisor's review."""
        return list(
            self.db.query(
                "SELECT m.submission_id, m.sample_id, m.reason, m.risk_score, s.village_code,"
                " s.form_id, s.observed_at FROM sample_members m"
                " JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.picked = 1 AND s.state = 'complete'"
                " AND s.village_code IN (SELECT value FROM json_each(?))"
                " ORDER BY m.risk_score DESC, s.observed_at LIMIT ?",
                [json.dumps(sorted(village_codes)), limit],
            )
        )

    def indicator_facility_rows(self, village_codes: Iterable[str] | None = None) -> list[dict]:
        """The record fields the indicators read, one plain row per facility."""
        sql = (
            "SELECT village_code, kind, json_extract(state, '$.status.value') AS status,"
            " coalesce(json_extract(state, '$.toilet_type.value'),"
            " json_extract(state, '$.rubbish_type.value'),"
            " json_extract(state, '$.fire_type.value'),"
            " json_extract(state, '$.zone_type.value')) AS type,"
            " json_extract(state, '$.sanitary.value') AS sanitary,"
            " json_extract(state, '$.harmless.value') AS harmless,"
            " json_extract(state, '$.in_use.value') AS in_use,"
            " json_extract(state, '$.open_to_public.value') AS open_to_public,"
            " json_extract(state, '$.running.value') AS running,"
            " json_extract(state, '$.equipment_ok.value') AS equipment_ok,"
            " json_extract(state, '$.score.value') AS score FROM facilities"
        )
        params = []
        if village_codes is not None:
            sql += " WHERE village_code IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(village_codes)))
        return list(self.db.query(sql, params))

    def indicator_task_rows(self, month: str, village_codes: Iterable[str] | None = None):
        """(village_code, status, due_on, n): the month's tasks counted by status and due date."""
        sql = (
            "SELECT village_code, coalesce(json_extract(state, '$.status.value'), 'not_started')"
            " AS status, due_on, count(*) AS n FROM tasks WHERE month = ?"
        )
        params = [month]
        if village_codes is not None:
            sql += " AND village_code IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(village_codes)))
        return list(self.db.query(sql + " GROUP BY 1, 2, 3", params))

    def inspections_by_village(self, month: str) -> dict[str, int]:
        """Submissions observed in a month (by the phone's local date), per village."""
        return dict(
            self.conn.execute(
                "SELECT village_code, count(*) FROM submissions"
                " WHERE substr(observed_at, 1, 7) = ? GROUP BY village_code",
                (month,),
            ).fetchall()
        )

    def save_indicator_snapshot(self, month: str, data: dict, *, at: str) -> None:
        with self.write():
            self.conn.execute(
                "INSERT OR REPLACE INTO indicator_snapshots (month, computed_at, data)"
                " VALUES (?, ?, ?)",
                (month, at, dumps(data)),
            )

    def indicator_snapshot(self, month: str) -> dict | None:
        row = self.conn.execute(
            "SELECT computed_at, data FROM indicator_snapshots WHERE month = ?", (month,)
        ).fetchone()
        return {"month": month, "computed_at": row[0], "data": json.loads(row[1])} if row else None

    @contextlib.contextmanager
    def reading(self) -> Iterator["Storage"]:
        """One read transaction: a long export sees one consistent state (WAL: never blocks
        writers)."""
        self.conn.execute("BEGIN")
        self._reading = True
        try:
            yield self
        finally:
            self._reading = False
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

    def form_versions(self, form_id: str) -> list[dict]:
        """Every published version of a form, newest first."""
        return [
            json.loads(r[0])
            for r in self.conn.execute(
                "SELECT definition FROM forms WHERE form_id = ? ORDER BY version DESC", (form_id,)
            )
        ]

    def _iter_rows(self, sql: str, params, batch: int) -> Iterator[dict]:
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        while rows := cur.fetchmany(batch):
            for row in rows:
                yield dict(zip(names, row, strict=True))

    def iter_export_submissions(
        self, form_id: str, village_codes: Iterable[str], *, month=None, batch: int = 1000
    ) -> Iterator[dict]:
        """A form's submissions in these villages, read from a cursor `batch` rows at a time."""
        sql = (
            "SELECT s.id, s.form_version, s.village_code, v.name AS village_name, v.township,"
            " s.record_id, coalesce(f.name, json_extract(t.title, '$.zh')) AS record_name,"
            " s.observed_at, s.received_at, u.display_name AS author, s.device_id, s.state,"
            " s.risk_score, s.answers FROM submissions s"
            " JOIN villages v ON v.code = s.village_code"
            " LEFT JOIN facilities f ON f.id = s.record_id"
            " LEFT JOIN tasks t ON t.id = s.record_id"
            " LEFT JOIN users u ON u.id = s.author_id"
            " WHERE s.form_id = ? AND s.village_code IN (SELECT value FROM json_each(?))"
        )
        params = [form_id, json.dumps(sorted(village_codes))]
        if month:
            sql += " AND substr(s.observed_at, 1, 7) = ?"
            params.append(month)
        sql += " ORDER BY s.village_code, s.observed_at, s.id"
        yield from self._iter_rows(sql, params, batch)

    def iter_export_facilities(
        self, village_codes: Iterable[str], *, kind=None, batch: int = 1000
    ) -> Iterator[dict]:
        """Facilities in these villages with their current state, `batch` rows at a time."""
        sql = (
            "SELECT f.id, f.village_code, v.name AS village_name, v.township, f.kind, f.name,"
            " f.lat, f.lon, f.state FROM facilities f JOIN villages v ON v.code = f.village_code"
            " WHERE f.village_code IN (SELECT value FROM json_each(?))"
        )
        params = [json.dumps(sorted(village_codes))]
        if kind:
            sql += " AND f.kind = ?"
            params.append(kind)
        sql += " ORDER BY f.village_code, f.kind, f.name, f.id"
        yield from self._iter_rows(sql, params, batch)

    def iter_village_photos(self, village_code: str, *, month=None, batch: int = 500):
        """Every photo used by a village's submissions, with what the manifest needs."""
        sql = (
            "SELECT m.sha256, m.field, m.captured_at, m.position, s.id AS submission_id,"
            " s.form_id, s.observed_at, s.record_id,"
            " coalesce(f.name, json_extract(t.title, '$.zh')) AS record_name,"
            " u.display_name AS author, media.mime, media.size FROM submission_media m"
            " JOIN submissions s ON s.id = m.submission_id"
            " LEFT JOIN facilities f ON f.id = s.record_id"
            " LEFT JOIN tasks t ON t.id = s.record_id"
            " LEFT JOIN users u ON u.id = s.author_id"
            " LEFT JOIN media ON media.sha256 = m.sha256 WHERE s.village_code = ?"
            " AND (media.sha256 IS NULL OR m.sha256 IN (SELECT m2.sha256 FROM submission_media m2"
            " JOIN submissions s2 ON s2.id = m2.submission_id JOIN photo_holders h"
            " ON h.sha256 = m2.sha256 AND h.user_id = s2.author_id WHERE s2.village_code = ?))"
        )
        params = [village_code, village_code]
        if month:
            sql += " AND substr(s.observed_at, 1, 7) = ?"
            params.append(month)
        yield from self._iter_rows(
            sql + " ORDER BY s.observed_at, s.id, m.field, m.sha256", params, batch
        )

    def users(self) -> list[dict]:
        """Every user with the number of assigned villages and live device tokens."""
        return list(
            self.db.query(
                "SELECT u.id, u.username, u.display_name, u.role, u.scope_township,"
                " u.scope_county, u.active, u.created_at,"
                " (SELECT count(*) FROM assignments a WHERE a.user_id = u.id) AS villages,"
                " (SELECT count(*) FROM tokens t WHERE t.user_id = u.id"
                " AND t.revoked_at IS NULL) AS live_tokens FROM users u ORDER BY u.username"
            )
        )

    def set_user_role(self, user_id: int, role: str, *, scope_township, scope_county, at, by=None):
        with self.write():
            self.conn.execute(
                "UPDATE users SET role = ?, scope_township = ?, scope_county = ? WHERE id = ?",
                (role, scope_township, scope_county, user_id),
            )
            self.end_desk_sessions_of(user_id)
            self.audit(
                "user.role",
                at=at,
                user_id=by,
                entity="user",
                entity_id=str(user_id),
                detail={"role": role, "township": scope_township, "county": scope_county},
            )

    def unassign(self, user_id: int, village_codes: Iterable[str], *, at: str, by=None) -> int:
        """Remove village assignments; returns how many there were."""
        codes = sorted(village_codes)
        with self.write():
            cur = self.conn.execute(
                "DELETE FROM assignments WHERE user_id = ?"
                " AND village_code IN (SELECT value FROM json_each(?))",
                (user_id, json.dumps(codes)),
            )
            self.audit(
                "user.unassign",
                at=at,
                user_id=by,
                entity="user",
                entity_id=str(user_id),
                detail={"villages": codes},
            )
            return cur.rowcount

    def set_user_active(self, user_id: int, active: bool, *, at: str, by=None) -> int:
        """(De)activate a user; deactivating also revokes every live device token (returned)."""
        with self.write():
            self.conn.execute("UPDATE users SET active = ? WHERE id = ?", (int(active), user_id))
            revoked = 0
            if not active:
                revoked = self.revoke_tokens_of(user_id, at=at)
                self.end_desk_sessions_of(user_id)
            self.audit(
                "user.activate" if active else "user.deactivate",
                at=at,
                user_id=by,
                entity="user",
                entity_id=str(user_id),
                detail={"tokens_revoked": revoked} if revoked else None,
            )
            return revoked

    # -- supervisor and admin pages ------------------------------------------------------

    def desk_queue(
        self,
        village_codes: Iterable[str],
        *,
        township: str | None = None,
        village: str | None = None,
        form: str | None = None,
        flag: str | None = None,
        states: Iterable[str] | None = None,
        sampled: bool = False,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[dict], int]:
        """The spot-check queue in these villages, riskiest first then newest: (page, total)."""
        where = ["s.village_code IN (SELECT value FROM json_each(?))"]
        params: list = [json.dumps(sorted(village_codes))]
        if township:
            where.append("v.township = ?")
            params.append(township)
        if village:
            where.append("s.village_code = ?")
            params.append(village)
        if form:
            where.append("s.form_id = ?")
            params.append(form)
        if flag:
            where.append(
                "EXISTS (SELECT 1 FROM flags x WHERE x.submission_id = s.id AND x.code = ?)"
            )
            params.append(flag)
        if states is not None:
            where.append("s.state IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(sorted(states)))
        if sampled:
            where.append(
                "EXISTS (SELECT 1 FROM sample_members m WHERE m.submission_id = s.id"
                " AND m.picked = 1)"
            )
        clause = " AND ".join(where)
        total = self.conn.execute(
            "SELECT count(*) FROM submissions s JOIN villages v ON v.code = s.village_code"
            f" WHERE {clause}",
            params,
        ).fetchone()[0]
        rows = self.db.query(
            "SELECT s.id, s.form_id, s.form_version, s.record_id, s.record_type, s.village_code,"
            " v.name AS village_name, v.township, s.author_id, u.display_name AS author,"
            " s.observed_at, s.received_at, s.state, s.risk_score,"
            " coalesce(f.name, json_extract(t.title, '$.zh')) AS record_name,"
            " (SELECT json_group_array(DISTINCT x.code) FROM flags x"
            "  WHERE x.submission_id = s.id) AS flag_codes,"
            " EXISTS (SELECT 1 FROM sample_members m WHERE m.submission_id = s.id"
            "  AND m.picked = 1) AS sampled"
            " FROM submissions s JOIN villages v ON v.code = s.village_code"
            " LEFT JOIN users u ON u.id = s.author_id"
            " LEFT JOIN facilities f ON f.id = s.record_id AND s.record_type = 'facility'"
            " LEFT JOIN tasks t ON t.id = s.record_id AND s.record_type = 'task'"
            f" WHERE {clause}"
            " ORDER BY coalesce(s.risk_score, -1) DESC, s.received_at DESC, s.id"
            " LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [{**r, "flag_codes": json.loads(r["flag_codes"] or "[]")} for r in rows], total

    def desk_photos(self, submission_ids: Iterable[str]) -> list[dict]:
        """Photos of these submissions with what the server knows of each (media row if held)."""
        rows = self.db.query(
            "SELECT sm.submission_id, sm.field, sm.sha256, sm.captured_at, sm.position,"
            " m.sha256 IS NOT NULL AS held, m.mime, m.width, m.height, m.size, m.exif"
            " FROM submission_media sm LEFT JOIN media m ON m.sha256 = sm.sha256"
            " WHERE sm.submission_id IN (SELECT value FROM json_each(?))"
            " ORDER BY sm.submission_id, sm.rowid",
            [json.dumps(list(submission_ids))],
        )
        return [
            {
                **r,
                "held": bool(r["held"]),
                "position": json.loads(r["position"]) if r["position"] else None,
                "exif": json.loads(r["exif"]) if r["exif"] else None,
            }
            for r in rows
        ]

    def desk_reviews(self, submission_id: str) -> list[dict]:
        """Every review of a submission, oldest first, with the reviewer's name."""
        return list(
            self.db.query(
                "SELECT r.id, r.decision, r.reason, r.at, r.reviewer_id,"
                " u.display_name AS reviewer FROM reviews r"
                " LEFT JOIN users u ON u.id = r.reviewer_id"
                " WHERE r.submission_id = ? ORDER BY r.id",
                [submission_id],
            )
        )

    def desk_user_names(self, ids: Iterable[int]) -> dict[int, str]:
        return dict(
            self.conn.execute(
                "SELECT id, coalesce(display_name, username) FROM users"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted({i for i in ids if i is not None})),),
            ).fetchall()
        )

    _DESK_CONFLICT_SQL = (
        "SELECT c.*, coalesce(f.village_code, t.village_code) AS village_code,"
        " v.name AS village_name, v.township,"
        " CASE WHEN f.id IS NOT NULL THEN 'facility' ELSE 'task' END AS record_type,"
        " coalesce(f.name, json_extract(t.title, '$.zh')) AS record_name, f.kind"
        " FROM conflicts c LEFT JOIN facilities f ON f.id = c.record_id"
        " LEFT JOIN tasks t ON t.id = c.record_id"
        " JOIN villages v ON v.code = coalesce(f.village_code, t.village_code)"
    )

    def desk_conflicts(
        self, village_codes: Iterable[str], *, open_only=True, limit=50, offset=0
    ) -> tuple[list[dict], int]:
        """Conflicts about records in these villages, newest first: (page, total)."""
        clause = " WHERE v.code IN (SELECT value FROM json_each(?))"
        if open_only:
            clause += " AND c.resolved_by IS NULL"
        params = [json.dumps(sorted(village_codes))]
        total = self.conn.execute(
            f"SELECT count(*) FROM ({self._DESK_CONFLICT_SQL}{clause})", params
        ).fetchone()[0]
        rows = self.db.query(
            f"{self._DESK_CONFLICT_SQL}{clause} ORDER BY c.created_at DESC, c.id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_conflict(r) for r in rows], total

    def desk_conflict(self, conflict_id: str) -> dict | None:
        rows = list(self.db.query(f"{self._DESK_CONFLICT_SQL} WHERE c.id = ?", [conflict_id]))
        return _conflict(rows[0]) if rows else None

    def desk_tasks(self, village_codes: Iterable[str], month: str) -> list[dict]:
        """Monthly tasks of these villages for one month ("YYYY-MM"), by township and village."""
        rows = self.db.query(
            "SELECT t.*, v.name AS village_name, v.township FROM tasks t"
            " JOIN villages v ON v.code = t.village_code"
            " WHERE t.month = ? AND t.village_code IN (SELECT value FROM json_each(?))"
            " ORDER BY v.township, v.code, t.due_on, t.id",
            [month, json.dumps(sorted(village_codes))],
        )
        return [_task(r) for r in rows]

    def desk_task_evidence(self, task_ids: Iterable[str]) -> list[dict]:
        """Photos of the monthly_task submissions about these tasks, newest submission first."""
        return list(
            self.db.query(
                "SELECT s.record_id AS task_id, s.id AS submission_id, s.state, s.observed_at,"
                " sm.field, sm.sha256 FROM submissions s"
                " JOIN submission_media sm ON sm.submission_id = s.id"
                " WHERE s.record_type = 'task'"
                " AND s.record_id IN (SELECT value FROM json_each(?))"
                " ORDER BY s.record_id, s.clock DESC, sm.rowid",
                [json.dumps(list(task_ids))],
            )
        )


def _with_state(row: dict) -> dict:
    row["state"] = json.loads(row["state"])
    return row


def _task(row: dict) -> dict:
    row["title"] = json.loads(row["title"]) if row["title"] else None
    return _with_state(row)


def _observation_row(r) -> dict:
    return {
        "id": r[0],
        "record_id": r[1],
        "clock": r[2],
        "fields": json.loads(r[3]),
        "base": json.loads(r[4]),
    }


def _conflict(row: dict) -> dict:
    row["a_value"] = json.loads(row["a_value"])
    row["b_value"] = json.loads(row["b_value"])
    return row
