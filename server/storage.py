"""Every SQL statement of villagecheck, behind one small class.

Protocol code (sync/, forms/, media/) never sees SQL; views, CLI commands and scheduler jobs call
methods here. A PostgreSQL backend would be a second class with the same methods. Writes go
through `write()`, which takes SQLite's write lock up front (BEGIN IMMEDIATE) so a transaction
never fails half-way on a busy database, and nests as savepoints.
"""

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator

import sqlite_utils

SCHEMA_VERSION = 1


def dumps(value) -> str:
    """Canonical JSON: the same value always gives the same bytes."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def connect(path) -> "Storage":
    """Open (creating if needed) the database file with the settings every connection needs."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return Storage(sqlite_utils.Database(conn))


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


MIGRATIONS = {1: _v1}


class Storage:
    """The database of one deployment: records, submissions, the change log and the audit log."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.conn = db.conn

    def close(self) -> None:
        self.conn.close()

    # -- transactions and schema -------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator["Storage"]:
        """One atomic write; nested calls become savepoints that roll back on their own."""
        if self.conn.in_transaction:
            with self.db.atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

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
        """Append to the audit log (who did what, when)."""
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

    def set_password_hash(self, user_id: int, password_hash: str, *, at: str) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )
            self.audit("user.password", at=at, entity="user", entity_id=str(user_id))

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
        """Record use, at most once a minute per token so reads stay cheap."""
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
        """A record's history: every submission about it, newest observation first."""
        rows = self.db.query(
            "SELECT id, form_id, form_version, author_id, device_id, clock, observed_at,"
            " received_at, state, answers FROM submissions WHERE record_id = ?"
            " ORDER BY clock DESC",
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

    def newest_clock(self) -> str | None:
        """The newest observation clock the server holds (the server's clock never goes back)."""
        return self.conn.execute("SELECT max(clock) FROM observations").fetchone()[0]

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

    # -- scheduler, monthly tasks, samples, indicators, exports --------------------------

    # -- supervisor and admin pages ------------------------------------------------------


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
