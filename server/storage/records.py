"""Records (facilities and monthly tasks), their observations and their conflicts.

Lookups by a list of ids answer an empty list without asking the database: push asks with
empty lists all the time.
"""

import json
from collections.abc import Iterable

from .core import dumps
from .villages import check_position


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


# A subquery true for an observation that is a rejected submission's (`observations` unaliased).
_REJECTED = "SELECT 1 FROM submissions s WHERE s.id = observations.id AND s.state = 'rejected'"


class RecordsMixin:
    """Facilities, monthly tasks, observations and conflicts."""

    # -- records: facilities and monthly tasks -----------------------------------------------

    def insert_facility(self, row: dict, *, at: str) -> None:
        """Insert a facility; lat/lon are WGS-84, with the `datum` they were declared in and
        their `position_source` (see `check_position`). Its initial fields (one clock: a
        phone's registration, the demo) are also kept as an observation with the facility's
        id, so a recount (server/recount.py) can fall back to them when every later report of
        a field is rejected. That observation is never a conflict candidate
        (`observations_since`)."""
        row = check_position(row, f"facility {row.get('id')!r}")
        clocks = {entry["clock"] for entry in row["state"].values()}
        if len(clocks) == 1 and all("by" in entry for entry in row["state"].values()):
            clock = clocks.pop()
            self.q(
                "INSERT INTO observations (id, record_id, clock, wall_ms, fields, base)"
                " VALUES (:id, :id, :clock, :wall_ms, :fields, '{}') ON CONFLICT DO NOTHING",
                id=row["id"],
                clock=clock,
                wall_ms=int(clock[:13]),
                fields=dumps({k: e["value"] for k, e in row["state"].items()}),
            )
        self.q(
            "INSERT INTO facilities (id, village_code, kind, name, lat, lon, datum,"
            " position_source, state, created_by, created_clock, created_at, content_hash)"
            " VALUES (:id, :village_code, :kind, :name, :lat, :lon, :datum, :position_source,"
            " :state, :created_by, :created_clock, :created_at, :content_hash)",
            id=row["id"],
            village_code=row["village_code"],
            kind=row["kind"],
            name=row["name"],
            lat=row.get("lat"),
            lon=row.get("lon"),
            datum=row["datum"],
            position_source=row["position_source"],
            state=dumps(row["state"]),
            created_by=row.get("created_by"),
            created_clock=row.get("created_clock"),
            created_at=at,
            content_hash=row.get("content_hash"),
        )
        self.log_change("facility", row["id"], village_code=row["village_code"], at=at)

    def facility(self, facility_id: str) -> dict | None:
        row = self.row("SELECT * FROM facilities WHERE id = :id", id=facility_id)
        return _with_state(row) if row else None

    def facilities_by_ids(self, ids: Iterable[str]) -> list[dict]:
        if not (ids := list(ids)):
            return []  # see the module docstring
        return [
            _with_state(r) for r in self.rows("SELECT * FROM facilities WHERE id IN :ids", ids=ids)
        ]

    def tasks_by_ids(self, ids: Iterable[str]) -> list[dict]:
        if not (ids := list(ids)):
            return []
        return [_task(r) for r in self.rows("SELECT * FROM tasks WHERE id IN :ids", ids=ids)]

    def tasks(self, village_code: str, month: str | None = None) -> list[dict]:
        where = " AND month = :month" if month else ""
        return [
            _task(r)
            for r in self.rows(
                f"SELECT * FROM tasks WHERE village_code = :village_code{where} ORDER BY month, id",
                village_code=village_code,
                month=month,
            )
        ]

    def facilities(self, village_code: str) -> list[dict]:
        return [
            _with_state(r)
            for r in self.rows(
                "SELECT * FROM facilities WHERE village_code = :village_code ORDER BY kind, name",
                village_code=village_code,
            )
        ]

    def insert_task(self, row: dict, *, at: str) -> bool:
        """Insert a monthly task unless it exists; True if inserted."""
        inserted = self.q(
            "INSERT INTO tasks (id, village_code, month, template, title, due_on, state,"
            " created_at) VALUES (:id, :village_code, :month, :template, :title, :due_on,"
            " :state, :created_at) ON CONFLICT DO NOTHING",
            id=row["id"],
            village_code=row["village_code"],
            month=row["month"],
            template=row["template"],
            title=dumps(row["title"]),
            due_on=row.get("due_on"),
            state=dumps(row.get("state", {})),
            created_at=at,
        ).rowcount
        if inserted:
            self.log_change("task", row["id"], village_code=row["village_code"], at=at)
        return inserted == 1

    def task(self, task_id: str) -> dict | None:
        row = self.row("SELECT * FROM tasks WHERE id = :id", id=task_id)
        return _task(row) if row else None

    def record(self, record_type: str, record_id: str) -> dict | None:
        """A facility or a monthly task, by the kind of record a form targets."""
        return self.task(record_id) if record_type == "task" else self.facility(record_id)

    def records_by_ids(self, record_type: str, ids: Iterable[str]) -> list[dict]:
        """Facilities or monthly tasks, by the kind of record a form targets."""
        return self.tasks_by_ids(ids) if record_type == "task" else self.facilities_by_ids(ids)

    def set_record_states(self, record_type: str, states: list[dict], *, at: str) -> None:
        """Store merged states: dicts of record `id`, `state` and `village_code`."""
        table = "tasks" if record_type == "task" else "facilities"
        self.many(
            f"UPDATE {table} SET state = :state WHERE id = :id",
            [{"id": r["id"], "state": dumps(r["state"])} for r in states],
        )
        self.log_changes(
            [
                {
                    "entity": record_type,
                    "entity_id": r["id"],
                    "village_code": r["village_code"],
                    "at": at,
                }
                for r in states
            ]
        )

    def facility_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        if not (ids := list(ids)):
            return {}
        return dict(
            self.q(
                "SELECT id, coalesce(content_hash, '') FROM facilities WHERE id IN :ids",
                ids=ids,
            ).all()
        )

    # -- observations and conflicts ----------------------------------------------------------

    def insert_observations(self, observations: list[dict]) -> None:
        """Store observations, first locking their records (PostgreSQL) so that merges of one
        record run one after another. A push locks its batch's records before reading them;
        the locks here then are already held and cost nothing."""
        self.lock_records(obs["record_id"] for obs in observations)
        self.many(
            "INSERT INTO observations (id, record_id, clock, wall_ms, fields, base)"
            " VALUES (:id, :record_id, :clock, :wall_ms, :fields, :base)",
            [
                {**obs, "fields": dumps(obs["fields"]), "base": dumps(obs["base"])}
                for obs in observations
            ],
        )

    def observations_since(self, record_ids: Iterable[str], lo_wall_ms: int) -> list[dict]:
        """Observations of these records from a wall time on (what a merge of new observations
        compares them with: conflict candidates and resolvers), oldest clock first.

        A rejected submission's observation does not count (server/recount.py) and is left
        out, and so is a registration's (`insert_facility`): it is the record's floor."""
        if not (record_ids := list(record_ids)):
            return []
        return [
            _observation_row(r)
            for r in self.q(
                "SELECT id, record_id, clock, fields, base FROM observations"
                " WHERE record_id IN :ids AND wall_ms >= :lo AND id <> record_id"
                f" AND NOT EXISTS ({_REJECTED}) ORDER BY clock",
                ids=record_ids,
                lo=lo_wall_ms,
            )
        ]

    def observations_of_record(self, record_id: str) -> list[dict]:
        """Every observation of a record, oldest clock first, each with `counted`: False for a
        rejected submission's (what a recount leaves out)."""
        return [
            {**_observation_row(r), "counted": not r[5]}
            for r in self.q(
                "SELECT id, record_id, clock, fields, base,"
                f" CASE WHEN EXISTS ({_REJECTED}) THEN 1 ELSE 0 END FROM observations"
                " WHERE record_id = :id ORDER BY clock",
                id=record_id,
            )
        ]

    def observation_clocks(self, ids: Iterable[str]) -> dict[str, str]:
        if not (ids := list(ids)):
            return {}
        return dict(self.q("SELECT id, clock FROM observations WHERE id IN :ids", ids=ids).all())

    def newest_clock(self, *, max_wall_ms: int) -> str | None:
        """The newest observation clock whose wall time is at most `max_wall_ms`.

        Encoded clocks start with 13 digits of wall time, so the bound is a string comparison
        that the index on `clock` answers.
        """
        if max_wall_ms >= 10**13 - 1:
            return self.scalar("SELECT max(clock) FROM observations")
        bound = f"{max(max_wall_ms, -1) + 1:013d}"
        return self.scalar("SELECT max(clock) FROM observations WHERE clock < :bound", bound=bound)

    def open_conflicts_of(self, record_ids: Iterable[str]) -> list[dict]:
        """The unresolved conflicts of these records."""
        if not (record_ids := list(record_ids)):
            return []
        return [
            _conflict(r)
            for r in self.rows(
                "SELECT * FROM conflicts WHERE record_id IN :ids AND resolved_by IS NULL"
                " ORDER BY id",
                ids=record_ids,
            )
        ]

    def insert_conflicts(self, rows: list[dict], *, at: str) -> None:
        """Insert conflicts; one already held (same id: same record, field and pair) stays."""
        self.many(
            "INSERT INTO conflicts (id, record_id, field, a, b, a_value, b_value, winner,"
            " resolved_by, created_at) VALUES (:id, :record_id, :field, :a, :b, :a_value,"
            " :b_value, :winner, :resolved_by, :created_at) ON CONFLICT DO NOTHING",
            [
                {
                    **row,
                    "a_value": dumps(row["a_value"]),
                    "b_value": dumps(row["b_value"]),
                    "resolved_by": row.get("resolved_by"),
                    "created_at": at,
                }
                for row in rows
            ],
        )

    def resolve_conflicts(self, resolvers: dict[str, str]) -> None:
        """Mark conflicts resolved (conflict id -> resolving observation); a conflict already
        resolved keeps its resolver."""
        self.many(
            "UPDATE conflicts SET resolved_by = :resolved_by WHERE id = :id"
            " AND resolved_by IS NULL",
            [{"id": cid, "resolved_by": by} for cid, by in resolvers.items()],
        )

    def replace_conflicts(self, record_id: str, rows: list[dict], *, at: str) -> list[dict]:
        """Make a record's conflicts exactly `rows` (a recount's: each with its `resolved_by`,
        or None when open). A conflict no longer among them (a side stopped counting) is
        removed; one already held keeps its `created_at`. Returns the rows whose presence or
        resolver changed (both sides' authors are told through pull)."""
        held = {c["id"]: c for c in self.conflicts(record_id=record_id)}
        wanted = {r["id"]: r for r in rows}
        gone = [c for cid, c in held.items() if cid not in wanted]
        if gone:
            self.q("DELETE FROM conflicts WHERE id IN :ids", ids=[c["id"] for c in gone])
        self.insert_conflicts([r for cid, r in wanted.items() if cid not in held], at=at)
        moved = [
            r
            for cid, r in wanted.items()
            if cid in held and held[cid]["resolved_by"] != r.get("resolved_by")
        ]
        self.many(
            "UPDATE conflicts SET resolved_by = :resolved_by WHERE id = :id",
            [{"id": r["id"], "resolved_by": r.get("resolved_by")} for r in moved],
        )
        return gone + [r for cid, r in wanted.items() if cid not in held] + moved

    def open_conflicts_by_side(self, observation_ids: Iterable[str]) -> list[dict]:
        """The unresolved conflicts that these submissions are a side of."""
        if not (ids := list(observation_ids)):
            return []
        rows = {
            r["id"]: r
            for r in self.rows(
                # Through the submissions' records, so the index on conflicts.record_id answers.
                "SELECT c.* FROM submissions s JOIN conflicts c ON c.record_id = s.record_id"
                " WHERE s.id IN :ids AND c.resolved_by IS NULL AND (c.a = s.id OR c.b = s.id)"
                " ORDER BY c.field, c.id",
                ids=ids,
            )
        }  # a conflict between two of these submissions comes twice
        return [_conflict(r) for r in rows.values()]

    def desk_record_conflicts(self, record_id: str) -> list[dict]:
        """A record's open conflicts with its name, village and type (the desk's page that
        settles them all at once), by field."""
        select, _ = self._desk_conflict_sql("c.record_id = :record_id AND c.resolved_by IS NULL")
        return [
            _conflict(r) for r in self.rows(f"{select} ORDER BY c.field, c.id", record_id=record_id)
        ]

    def conflicts(self, *, record_id: str | None = None) -> list[dict]:
        where = "WHERE record_id = :record_id" if record_id else ""
        return [
            _conflict(r)
            for r in self.rows(f"SELECT * FROM conflicts {where} ORDER BY id", record_id=record_id)
        ]

    def tasks_not_done_due_before(self, day: str) -> list[dict]:
        """Monthly tasks due before `day` (YYYY-MM-DD) and neither done nor already overdue.

        A task created after its due date (a village added late in the month) is left alone."""
        status = self.dialect.json_get("state", "status")
        return self.rows(
            f"SELECT id, village_code, due_on, {self.dialect.json_get(status, 'clock')}"
            f" AS status_clock FROM tasks WHERE due_on < :day"
            f" AND coalesce({self.dialect.json_get(status, 'value')}, 'not_started')"
            " NOT IN ('done', 'overdue')"
            " AND (created_at IS NULL OR substr(created_at, 1, 10) <= due_on) ORDER BY id",
            day=day,
        )
