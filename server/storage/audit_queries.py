"""Richer reads of the audit log for the admin pages (filters, CSV export), and the admin
settings that override config values at read time (issue 13).

Kept apart from core.py, whose `audit`/`audit_entries` are the log's writers and basic reader.
"""

import json
from collections.abc import Iterable

from .core import dumps

AUDIT_PAGE_MAX = 10_000


class AuditQueriesMixin:
    """The audit log filtered for the admin page; admin settings."""

    def audit_search(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        entity: str | None = None,
        since: str | None = None,
        until: str | None = None,
        user_ids: Iterable[int] | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[dict]:
        """Audit entries newest first, with the actor's username. `actor` is a username
        (entries by that user) or "cli:<os user>" for command-line actions; `action` matches
        a prefix ("user." finds every user action); `since`/`until` are ISO times (until
        exclusive); `user_ids`, when given, limits entries to those about or by these users
        (a county admin's view)."""
        sql = (
            "SELECT a.id, a.at, a.user_id, u.username AS actor, a.action, a.entity,"
            " a.entity_id, a.detail FROM audit a LEFT JOIN users u ON u.id = a.user_id"
            " WHERE 1=1"
        )
        params: dict = {"limit": min(limit, AUDIT_PAGE_MAX), "offset": offset}
        if actor:
            if actor.startswith("cli:"):
                sql += " AND a.user_id IS NULL AND a.detail LIKE :os_user"
                params["os_user"] = "%" + dumps({"os_user": actor[4:]})[1:-1] + "%"
            else:
                sql += " AND u.username = :actor"
                params["actor"] = actor
        if action:
            sql += " AND substr(a.action, 1, :action_length) = :action"
            params.update(action=action, action_length=len(action))
        if entity:
            sql += " AND a.entity = :entity"
            params["entity"] = entity
        if since:
            sql += " AND a.at >= :since"
            params["since"] = since
        if until:
            sql += " AND a.at < :until"
            params["until"] = until
        if user_ids is not None:
            ids = sorted(user_ids)
            if not ids:
                return []
            sql += " AND (a.user_id IN :ids OR (a.entity = 'user' AND a.entity_id IN :id_texts))"
            params.update(ids=ids, id_texts=[str(i) for i in ids])
        sql += " ORDER BY a.id DESC LIMIT :limit OFFSET :offset"
        return self.rows(sql, **params)

    def audit_actions(self) -> list[str]:
        return self.q("SELECT DISTINCT action FROM audit ORDER BY action").scalars().all()

    # -- admin settings ---------------------------------------------------------------------

    def admin_settings(self, county: str = "") -> dict[str, object]:
        """Settings changed on the admin pages: the deployment's ('' county) overlaid by the
        county's own."""
        rows = self.rows(
            "SELECT county, name, value FROM admin_settings WHERE county IN :counties",
            counties=sorted({"", county}),
        )
        rows.sort(key=lambda r: r["county"] != "")  # the county's own win
        return {r["name"]: json.loads(r["value"]) for r in rows}

    def set_admin_setting(self, name: str, value, *, county: str, at: str, by: int | None):
        """Store one setting and audit the change (old and new value)."""
        with self.write():
            old = self.scalar(
                "SELECT value FROM admin_settings WHERE county = :county AND name = :name",
                county=county,
                name=name,
            )
            self.q(
                "INSERT INTO admin_settings (county, name, value, updated_at, updated_by)"
                " VALUES (:county, :name, :value, :at, :by) ON CONFLICT (county, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,"
                " updated_by = excluded.updated_by",
                county=county,
                name=name,
                value=json.dumps(value),
                at=at,
                by=by,
            )
            self.audit(
                "settings.change",
                at=at,
                user_id=by,
                entity="setting",
                entity_id=f"{county}:{name}" if county else name,
                detail={"old": json.loads(old) if old else None, "new": value},
            )

    def users_in(self, village_codes: Iterable[str], *, townships=(), county=None) -> list[dict]:
        """`users()` rows of the people of a scope: assigned one of these villages, or scoped to
        one of these townships or this county."""
        codes, townships = sorted(village_codes), sorted(townships)
        sql = (
            "SELECT u.id, u.username, u.display_name, u.role, u.scope_township,"
            " u.scope_county, u.active, u.created_at,"
            " (SELECT count(*) FROM assignments a WHERE a.user_id = u.id) AS villages,"
            " (SELECT count(*) FROM tokens t WHERE t.user_id = u.id"
            " AND t.revoked_at IS NULL) AS live_tokens FROM users u WHERE 0=1"
        )
        params: dict = {}
        if codes:
            sql += (
                " OR EXISTS (SELECT 1 FROM assignments a WHERE a.user_id = u.id"
                " AND a.village_code IN :codes)"
            )
            params["codes"] = codes
        if townships:
            sql += " OR u.scope_township IN :townships"
            params["townships"] = townships
        if county:
            sql += " OR u.scope_county = :county"
            params["county"] = county
        return self.rows(sql + " ORDER BY u.username", **params)

    def devices_of(self, user_id: int) -> list[dict]:
        return self.rows(
            "SELECT device_id, last_seen_at, last_clock, skew_ms FROM devices"
            " WHERE user_id = :user_id ORDER BY last_seen_at DESC",
            user_id=user_id,
        )

    def set_facility_register(self, facility_id: str, *, name, lat, lon, datum, at, by) -> None:
        """Correct a facility's register entry (name, position in WGS-84 with the datum it was
        typed in); a change every phone of its village pulls."""
        with self.write():
            row = self.row(
                "SELECT village_code, name, lat, lon FROM facilities WHERE id = :id",
                id=facility_id,
            )
            self.q(
                "UPDATE facilities SET name = :name, lat = :lat, lon = :lon, datum = :datum,"
                " position_source = :source WHERE id = :id",
                name=name,
                lat=lat,
                lon=lon,
                datum=datum if lat is not None else None,
                source="register_import" if lat is not None else None,
                id=facility_id,
            )
            self.log_change("facility", facility_id, village_code=row["village_code"], at=at)
            self.audit(
                "facility.edit",
                at=at,
                user_id=by,
                entity="facility",
                entity_id=facility_id,
                detail={
                    "old": {"name": row["name"], "lat": row["lat"], "lon": row["lon"]},
                    "new": {"name": name, "lat": lat, "lon": lon, "datum": datum},
                },
            )
