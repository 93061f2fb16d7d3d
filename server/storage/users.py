"""Users and their village assignments, device tokens and devices, desk sessions and the
login throttle."""

import contextlib
import json
from collections.abc import Iterable

from .core import DatabaseBusy

TOUCH_WAIT_SECONDS = 1.0  # a token's last-use time is not worth a long wait


class UsersMixin:
    """Users, assignments, tokens, devices, desk sessions and the login throttle."""

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

    # -- devices -----------------------------------------------------------------------------

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

    # -- user management (admins) ------------------------------------------------------------

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
