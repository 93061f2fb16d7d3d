"""Records (facilities and monthly tasks), their observations and their conflicts."""

import json
from collections.abc import Iterable

from .core import dumps


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


class RecordsMixin:
    """Facilities, monthly tasks, observations and conflicts."""

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

    def facility_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        return dict(
            self.conn.execute(
                "SELECT id, coalesce(content_hash, '') FROM facilities"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)),),
            ).fetchall()
        )

    # -- observations and conflicts ----------------------------------------------------------

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
