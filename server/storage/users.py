"""Users and their village assignments, device tokens and devices, desk sessions and the
login throttle."""

import contextlib
import json
from collections.abc import Iterable

from .core import DatabaseBusy

TOUCH_WAIT_SECONDS = 1.0  # a token's last-use time is not worth a long wait
THROTTLE_LOCK = "login_throttle"  # the advisory lock of every login throttle write (PostgreSQL)


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
        must_change_password=False,
    ) -> int:
        """`must_change_password`: an admin chose the password, so the user must choose their
        own at the first login. (`password_changed_at` stays NULL: the age counts from
        `created_at`; the INSERT names only the columns older schemas had, so tests can fill
        databases of older versions with it.)"""
        with self.write():
            user_id = self.scalar(
                "INSERT INTO users (username, display_name, role, password_hash,"
                " scope_township, scope_county, active, created_at) VALUES (:username,"
                " :display_name, :role, :password_hash, :scope_township, :scope_county, 1, :at)"
                " RETURNING id",
                username=username,
                display_name=display_name,
                role=role,
                password_hash=password_hash,
                scope_township=scope_township,
                scope_county=scope_county,
                at=at,
            )
            if must_change_password:
                self.q(
                    "UPDATE users SET must_change_password = 1 WHERE id = :user_id",
                    user_id=user_id,
                )
            self.audit(
                "user.create", at=at, entity="user", entity_id=username, detail={"role": role}
            )
            return user_id

    def user(self, *, id=None, username=None) -> dict | None:
        column, value = ("id", id) if id is not None else ("username", username)
        return self.row(f"SELECT * FROM users WHERE {column} = :value", value=value)

    def set_password_hash(
        self,
        user_id: int,
        password_hash: str,
        *,
        at: str,
        revoke_tokens: bool = True,
        must_change: bool = True,
    ) -> int:
        """Set a new password and end the user's desk sessions; by default also revoke every
        device token (whoever knew the old password may have logged a phone in). Returns the
        number of tokens revoked.

        `must_change` (the default: an admin's reset) makes the user choose their own password
        at the next login; the user's own change passes False."""
        with self.write():
            self.q(
                "UPDATE users SET password_hash = :password_hash,"
                " must_change_password = :must_change, password_changed_at = :at"
                " WHERE id = :user_id",
                password_hash=password_hash,
                must_change=int(must_change),
                at=at,
                user_id=user_id,
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

    # -- two-factor login (TOTP, server/totp.py) ------------------------------------------------

    def set_totp(self, user_id: int, *, secret: str, recovery: list[str], at: str) -> None:
        """Enrol: the encrypted secret and the hashes of the recovery codes."""
        with self.write():
            self.q(
                "UPDATE users SET totp_secret = :secret, totp_recovery = :recovery,"
                " totp_enrolled_at = :at, totp_last_step = NULL WHERE id = :user_id",
                secret=secret,
                recovery=json.dumps(recovery),
                at=at,
                user_id=user_id,
            )
            self.audit(
                "user.totp_enrol", at=at, user_id=user_id, entity="user", entity_id=str(user_id)
            )

    def clear_totp(self, user_id: int, *, at: str, by=None) -> None:
        """Remove a user's second factor (a lost phone): they enrol again at the next login
        when their role requires it."""
        with self.write():
            self.q(
                "UPDATE users SET totp_secret = NULL, totp_recovery = NULL,"
                " totp_enrolled_at = NULL, totp_last_step = NULL WHERE id = :user_id",
                user_id=user_id,
            )
            self.end_desk_sessions_of(user_id)
            self.audit("user.totp_clear", at=at, user_id=by, entity="user", entity_id=str(user_id))

    def accept_totp_step(self, user_id: int, step: int) -> bool:
        """Record that the code of time step `step` was used; False when that step (or a
        later one) was already used, so a code overheard or replayed does not work twice."""
        with self.write():
            return (
                self.q(
                    "UPDATE users SET totp_last_step = :step WHERE id = :user_id"
                    " AND (totp_last_step IS NULL OR totp_last_step < :step)",
                    step=step,
                    user_id=user_id,
                ).rowcount
                == 1
            )

    def use_recovery_code(self, user_id: int, code_hash: str, *, at: str) -> bool:
        """Spend one recovery code; False when it is not (or no longer) among the user's."""
        with self.write():
            stored = self.scalar(
                "SELECT totp_recovery FROM users WHERE id = :user_id", user_id=user_id
            )
            hashes = json.loads(stored) if stored else []
            if code_hash not in hashes:
                return False
            left = [h for h in hashes if h != code_hash]
            spent = self.q(
                "UPDATE users SET totp_recovery = :left WHERE id = :user_id"
                " AND totp_recovery = :stored",
                left=json.dumps(left),
                stored=stored,
                user_id=user_id,
            ).rowcount
            if spent:
                self.audit(
                    "user.recovery_code",
                    at=at,
                    user_id=user_id,
                    entity="user",
                    entity_id=str(user_id),
                    detail={"left": len(left)},
                )
            return spent == 1

    def assign(self, user_id: int, village_codes: Iterable[str], *, at: str) -> None:
        codes = sorted(village_codes)
        with self.write():
            self.many(
                "INSERT INTO assignments (user_id, village_code) VALUES (:user_id, :code)"
                " ON CONFLICT DO NOTHING",
                [{"user_id": user_id, "code": code} for code in codes],
            )
            self.audit(
                "user.assign",
                at=at,
                entity="user",
                entity_id=str(user_id),
                detail={"villages": codes},
            )

    def assigned_villages(self, user_id: int) -> list[str]:
        sql = "SELECT village_code FROM assignments WHERE user_id = :user_id ORDER BY village_code"
        return self.q(sql, user_id=user_id).scalars().all()

    def create_token(self, *, user_id, token_hash, device_id, label, at) -> int:
        with self.write():
            token_id = self.scalar(
                "INSERT INTO tokens (user_id, token_hash, device_id, label, created_at,"
                " last_used_at) VALUES (:user_id, :token_hash, :device_id, :label, :at, :at)"
                " RETURNING id",
                user_id=user_id,
                token_hash=token_hash,
                device_id=device_id,
                label=label,
                at=at,
            )
            self.audit(
                "token.create",
                at=at,
                user_id=user_id,
                entity="token",
                entity_id=str(token_id),
                detail={"device_id": device_id},
            )
            return token_id

    def token(self, token_hash: str) -> dict | None:
        return self.row(
            "SELECT * FROM tokens WHERE token_hash = :token_hash", token_hash=token_hash
        )

    def touch_token(self, token_id: int, at: str) -> None:
        """Record use, at most once a minute per token, so reads stay cheap.

        An UPDATE takes the write lock even when it changes no row, so the once-a-minute test is
        a read first; and the touch is best-effort: a pull never waits behind a queue of pushes
        for it (the minute after will do).
        """
        minute = at[:16]
        stale = "SELECT 1 FROM tokens WHERE id = :token_id AND last_used_at < :minute"
        if self.scalar(stale, token_id=token_id, minute=minute) is None:
            return
        with contextlib.suppress(DatabaseBusy), self.write(wait=TOUCH_WAIT_SECONDS):
            self.q(
                "UPDATE tokens SET last_used_at = :at"
                " WHERE id = :token_id AND last_used_at < :minute",
                at=at,
                token_id=token_id,
                minute=minute,
            )

    def tokens_of(self, user_id: int) -> list[dict]:
        return self.rows(
            "SELECT id, device_id, label, created_at, last_used_at, revoked_at FROM tokens"
            " WHERE user_id = :user_id ORDER BY id",
            user_id=user_id,
        )

    def revoke_token(self, token_id: int, *, user_id: int, by: int, at: str) -> bool:
        """Revoke one of a user's tokens; False when there is no such live token."""
        with self.write():
            revoked = self.q(
                "UPDATE tokens SET revoked_at = :at WHERE id = :token_id AND user_id = :user_id"
                " AND revoked_at IS NULL",
                at=at,
                token_id=token_id,
                user_id=user_id,
            ).rowcount
            if revoked:
                self.audit(
                    "token.revoke", at=at, user_id=by, entity="token", entity_id=str(token_id)
                )
            return revoked == 1

    def _lock_throttle(self) -> None:
        """Hold the login throttle until the write ends (the throttle methods run inside one).

        A try is counted by reading its buckets and saving them again, which must not
        interleave with another try's: SQLite runs one write at a time anyway; PostgreSQL lets
        writes run side by side and a bucket not saved yet has no row to lock, so the whole
        throttle takes one advisory lock (a login's write lasts milliseconds; its password
        check runs outside it). One lock, not one per bucket: the prune deletes other tries'
        buckets, which with per-bucket locks could deadlock on their rows.
        """
        self.lock_records([THROTTLE_LOCK])

    def throttle_rows(self, keys: Iterable[str]) -> dict[str, dict]:
        """The login throttle buckets with these keys (missing ones are absent)."""
        self._lock_throttle()
        keys = sorted(keys)
        if not keys:
            return {}
        return {
            r["key"]: r
            for r in self.rows("SELECT * FROM login_throttle WHERE key IN :keys", keys=keys)
        }

    def save_throttle(self, key: str, kind: str, *, failures: int, last_at: float, next_at: float):
        self._lock_throttle()
        self.q(
            "INSERT INTO login_throttle (key, kind, failures, last_at, next_at)"
            " VALUES (:key, :kind, :failures, :last_at, :next_at)"
            " ON CONFLICT (key) DO UPDATE SET kind = excluded.kind,"
            " failures = excluded.failures, last_at = excluded.last_at, next_at = excluded.next_at",
            key=key,
            kind=kind,
            failures=failures,
            last_at=last_at,
            next_at=next_at,
        )

    def delete_throttle(self, key: str) -> None:
        self._lock_throttle()
        self.q("DELETE FROM login_throttle WHERE key = :key", key=key)

    def prune_throttle(self, *, now: float, failures_before: float, good_before: float) -> None:
        """Forget failure buckets quiet since `failures_before`, and old known-good logins."""
        self._lock_throttle()
        self.q(
            "DELETE FROM login_throttle"
            " WHERE kind != 'good' AND last_at < :failures_before AND next_at <= :now",
            failures_before=failures_before,
            now=now,
        )
        self.q(
            "DELETE FROM login_throttle WHERE kind = 'good' AND last_at < :good_before",
            good_before=good_before,
        )

    def login_alerts(self, since: str, limit: int = 20) -> list[dict]:
        """Recent `login_throttled` audit entries, newest first (shown to admins)."""
        return self.rows(
            "SELECT at, entity_id AS username, detail FROM audit"
            " WHERE action = 'login_throttled' AND at >= :since ORDER BY id DESC LIMIT :limit",
            since=since,
            limit=limit,
        )

    # -- desk sessions (the supervisors' and admins' pages) ------------------------------------

    def create_desk_session(self, session_hash: str, user_id: int, *, at: str) -> int:
        with self.write():
            session_id = self.scalar(
                "INSERT INTO desk_sessions (session_hash, user_id, created_at, last_seen_at)"
                " VALUES (:session_hash, :user_id, :at, :at) RETURNING id",
                session_hash=session_hash,
                user_id=user_id,
                at=at,
            )
            self.audit("web.login", at=at, user_id=user_id, entity="user", entity_id=str(user_id))
            return session_id

    def desk_session(self, session_hash: str) -> dict | None:
        return self.row(
            "SELECT * FROM desk_sessions WHERE session_hash = :session_hash",
            session_hash=session_hash,
        )

    def touch_desk_session(self, session_id: int, at: str) -> None:
        """Record activity (callers touch at most once a minute, so page loads stay cheap)."""
        with self.write():
            self.q(
                "UPDATE desk_sessions SET last_seen_at = :at WHERE id = :session_id",
                at=at,
                session_id=session_id,
            )

    def end_desk_session(self, session_hash: str) -> None:
        with self.write():
            self.q(
                "DELETE FROM desk_sessions WHERE session_hash = :session_hash",
                session_hash=session_hash,
            )

    def end_desk_sessions_of(self, user_id: int) -> int:
        """End every desk session of a user (password reset, deactivation, role change)."""
        return self.q(
            "DELETE FROM desk_sessions WHERE user_id = :user_id", user_id=user_id
        ).rowcount

    def prune_desk_sessions(self, *, idle_before: str, created_before: str) -> None:
        with self.write():
            self.q(
                "DELETE FROM desk_sessions"
                " WHERE last_seen_at < :idle_before OR created_at < :created_before",
                idle_before=idle_before,
                created_before=created_before,
            )

    def revoke_tokens_of(self, user_id: int, *, at: str) -> int:
        """Revoke every live device token of a user; returns how many there were."""
        return self.q(
            "UPDATE tokens SET revoked_at = :at WHERE user_id = :user_id AND revoked_at IS NULL",
            at=at,
            user_id=user_id,
        ).rowcount

    # -- devices -----------------------------------------------------------------------------

    def record_device(self, *, device_id, user_id, clock, skew_ms, at) -> None:
        """Remember each device's latest clock and skew (set at every push); a push without a
        clock keeps the last one. (NULLs become '' for `greatest`: SQLite's max() of a NULL is
        NULL, PostgreSQL's greatest() skips it.)"""
        latest = self.dialect.greatest(
            "coalesce(devices.last_clock, '')", "coalesce(excluded.last_clock, '')"
        )
        self.q(
            "INSERT INTO devices (device_id, user_id, last_seen_at, last_clock, skew_ms)"
            " VALUES (:device_id, :user_id, :at, :clock, :skew_ms)"
            " ON CONFLICT (device_id) DO UPDATE SET"
            " user_id = excluded.user_id, last_seen_at = excluded.last_seen_at,"
            f" last_clock = nullif({latest}, ''), skew_ms = excluded.skew_ms",
            device_id=device_id,
            user_id=user_id,
            at=at,
            clock=clock,
            skew_ms=skew_ms,
        )

    def device(self, device_id: str) -> dict | None:
        return self.row("SELECT * FROM devices WHERE device_id = :device_id", device_id=device_id)

    # -- user management (admins) ------------------------------------------------------------

    def users(self) -> list[dict]:
        """Every user with the number of assigned villages and live device tokens."""
        return self.rows(
            "SELECT u.id, u.username, u.display_name, u.role, u.scope_township,"
            " u.scope_county, u.active, u.created_at,"
            " (SELECT count(*) FROM assignments a WHERE a.user_id = u.id) AS villages,"
            " (SELECT count(*) FROM tokens t WHERE t.user_id = u.id"
            " AND t.revoked_at IS NULL) AS live_tokens FROM users u ORDER BY u.username"
        )

    def set_user_role(self, user_id: int, role: str, *, scope_township, scope_county, at, by=None):
        with self.write():
            self.q(
                "UPDATE users SET role = :role, scope_township = :scope_township,"
                " scope_county = :scope_county WHERE id = :user_id",
                role=role,
                scope_township=scope_township,
                scope_county=scope_county,
                user_id=user_id,
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
            removed = 0
            if codes:
                removed = self.q(
                    "DELETE FROM assignments WHERE user_id = :user_id AND village_code IN :codes",
                    user_id=user_id,
                    codes=codes,
                ).rowcount
            self.audit(
                "user.unassign",
                at=at,
                user_id=by,
                entity="user",
                entity_id=str(user_id),
                detail={"villages": codes},
            )
            return removed

    def set_user_active(self, user_id: int, active: bool, *, at: str, by=None) -> int:
        """(De)activate a user; deactivating also revokes every live device token (returned)."""
        with self.write():
            self.q(
                "UPDATE users SET active = :active WHERE id = :user_id",
                active=int(active),
                user_id=user_id,
            )
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
