"""Scheduled jobs' leases and run log, spot-check samples, and indicators."""

import json
from collections.abc import Iterable

from .core import dumps

#: The facility fields the indicators read besides `status`: the type (whichever of these
#: the facility's kind has), then fields read as plain values.
_FACILITY_TYPES = ("toilet_type", "rubbish_type", "fire_type", "zone_type")
_FACILITY_VALUES = (
    "sanitary",
    "harmless",
    "in_use",
    "open_to_public",
    "running",
    "equipment_ok",
    "score",
)


def _scope(village_codes: Iterable[str] | None) -> tuple[str, list[str] | None]:
    """The condition "in these villages" (every village when None) and the codes to bind."""
    if village_codes is None:
        return "1 = 1", None
    return "village_code IN :codes", sorted(village_codes)


class JobsMixin:
    """Job leases and runs, samples and indicators."""

    # -- scheduler: job leases and the run log -----------------------------------------------

    def take_job_lease(self, job: str, holder: str, *, now: str, until: str, slot=None) -> bool:
        """Take a job's lease in one atomic upsert; False if another holder's lease is live.

        With a `slot` (the scheduled occurrence, e.g. "2026-12-01") the lease is also refused
        when that slot, or a later one, has already been run to completion, so two processes
        whose schedulers fire a few seconds apart still run the occurrence once.

        One statement on both engines: on PostgreSQL, ON CONFLICT locks the existing row and
        checks the WHERE against its newest committed version, so of several server processes
        asking at once exactly one gets a row back.
        """
        unfinished = (
            " AND (job_leases.last_slot IS NULL OR job_leases.last_slot < :slot)"
            if slot is not None
            else ""
        )
        with self.write():
            taken = self.q(
                "INSERT INTO job_leases (job, holder, expires_at) VALUES (:job, :holder, :until)"
                " ON CONFLICT (job) DO UPDATE SET holder = excluded.holder,"
                f" expires_at = excluded.expires_at WHERE job_leases.expires_at <= :now{unfinished}"
                " RETURNING job",
                job=job,
                holder=holder,
                until=until,
                now=now,
                slot=slot,
            ).first()
            return taken is not None

    def release_job_lease(self, job: str, holder: str, *, now: str, slot=None) -> None:
        """Free the lease at once; a completed `slot` is remembered so it never runs again."""
        with self.write():
            self.q(
                "UPDATE job_leases SET expires_at = :now, last_slot = coalesce(:slot, last_slot)"
                " WHERE job = :job AND holder = :holder",
                now=now,
                slot=slot,
                job=job,
                holder=holder,
            )

    def job_leases(self) -> list[dict]:
        return self.rows("SELECT job, holder, expires_at, last_slot FROM job_leases ORDER BY job")

    def start_job_run(self, job: str, holder: str, *, slot, at: str) -> int:
        with self.write():
            return self.scalar(
                "INSERT INTO job_runs (job, holder, slot, started_at)"
                " VALUES (:job, :holder, :slot, :at) RETURNING id",
                job=job,
                holder=holder,
                slot=slot,
                at=at,
            )

    def finish_job_run(self, run_id: int, *, ok: bool, summary, error, at: str) -> None:
        with self.write():
            self.q(
                "UPDATE job_runs SET finished_at = :at, ok = :ok, summary = :summary,"
                " error = :error WHERE id = :id",
                at=at,
                ok=int(ok),
                summary=dumps(summary) if summary is not None else None,
                error=error,
                id=run_id,
            )

    def job_runs(self, job: str | None = None, limit: int = 50) -> list[dict]:
        where = "WHERE job = :job" if job else ""
        rows = self.rows(
            "SELECT id, job, holder, slot, started_at, finished_at, ok, summary, error"
            f" FROM job_runs {where} ORDER BY id DESC LIMIT :limit",
            job=job,
            limit=limit,
        )
        return [{**r, "summary": json.loads(r["summary"]) if r["summary"] else None} for r in rows]

    # -- spot-check samples ------------------------------------------------------------------

    def sample_pool(self) -> list[dict]:
        """Complete, unreviewed submissions that no earlier draw has considered."""
        return self.rows(
            "SELECT s.id, s.village_code, s.risk_score FROM submissions s"
            " WHERE s.state = 'complete' AND NOT EXISTS"
            " (SELECT 1 FROM sample_members m WHERE m.submission_id = s.id) ORDER BY s.id"
        )

    def save_sample(self, *, drawn_at: str, seed: int, rule: dict, members: list[dict]) -> int:
        """Store a draw: its seed and rule, and every candidate with whether it was picked."""
        with self.write():
            picked = sum(1 for m in members if m["picked"])
            sample_id = self.scalar(
                "INSERT INTO samples (drawn_at, seed, rule, pool_size, picked_count)"
                " VALUES (:drawn_at, :seed, :rule, :pool_size, :picked) RETURNING id",
                drawn_at=drawn_at,
                seed=seed,
                rule=dumps(rule),
                pool_size=len(members),
                picked=picked,
            )
            self.many(
                "INSERT INTO sample_members (sample_id, submission_id, village_code, risk_score,"
                " picked, reason) VALUES (:sample_id, :id, :village_code, :risk_score, :picked,"
                " :reason)",
                [
                    {
                        "sample_id": sample_id,
                        "id": m["id"],
                        "village_code": m["village_code"],
                        "risk_score": m["risk_score"],
                        "picked": int(m["picked"]),
                        "reason": m["reason"],
                    }
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
        found = self._samples("WHERE id = :id", id=sample_id)
        if not found:
            return None
        sample = found[0]
        sample["members"] = self.rows(
            "SELECT submission_id AS id, village_code, risk_score, picked, reason"
            " FROM sample_members WHERE sample_id = :id ORDER BY submission_id",
            id=sample_id,
        )
        return sample

    def samples(self, limit: int = 50) -> list[dict]:
        return self._samples("ORDER BY id DESC LIMIT :limit", limit=limit)

    def _samples(self, tail: str, **params) -> list[dict]:
        rows = self.rows(
            f"SELECT id, drawn_at, seed, rule, pool_size, picked_count FROM samples {tail}",
            **params,
        )
        return [{**r, "rule": json.loads(r["rule"])} for r in rows]

    def sample_queue(self, village_codes: Iterable[str], limit: int = 500) -> list[dict]:
        """Picked submissions in these villages still waiting for a supervisor's review,
        riskiest first (no score counts as the lowest, as SQLite always sorted it)."""
        codes = sorted(village_codes)
        if not codes:
            return []  # see _scope
        return self.rows(
            "SELECT m.submission_id, m.sample_id, m.reason, m.risk_score, s.village_code,"
            " s.form_id, s.observed_at FROM sample_members m"
            " JOIN submissions s ON s.id = m.submission_id"
            " WHERE m.picked = 1 AND s.state = 'complete' AND s.village_code IN :codes"
            " ORDER BY m.risk_score DESC NULLS LAST, s.observed_at, m.submission_id LIMIT :limit",
            codes=codes,
            limit=limit,
        )

    # -- indicators --------------------------------------------------------------------------

    def indicator_facility_rows(self, village_codes: Iterable[str] | None = None) -> list[dict]:
        """The record fields the indicators read, one plain row per facility: status and type
        as text, the others as the driver reads JSON (a boolean is 1/0 on SQLite, a bool on
        PostgreSQL; the indicators accept both)."""
        scope, codes = _scope(village_codes)
        if codes == []:
            return []
        d = self.dialect
        types = ", ".join(d.json_path_text("state", t, "value") for t in _FACILITY_TYPES)
        values = "".join(
            f", {d.json_path_value('state', v, 'value')} AS {v}" for v in _FACILITY_VALUES
        )
        return self.rows(
            f"SELECT village_code, kind, {d.json_path_text('state', 'status', 'value')} AS status,"
            f" coalesce({types}) AS type{values} FROM facilities WHERE {scope}",
            codes=codes,
        )

    def indicator_task_rows(self, month: str, village_codes: Iterable[str] | None = None):
        """(village_code, status, due_on, n): the month's tasks counted by status and due date."""
        scope, codes = _scope(village_codes)
        if codes == []:
            return []
        status = self.dialect.json_path_text("state", "status", "value")
        return self.rows(
            f"SELECT village_code, coalesce({status}, 'not_started') AS status, due_on,"
            f" count(*) AS n FROM tasks WHERE month = :month AND {scope} GROUP BY 1, 2, 3",
            month=month,
            codes=codes,
        )

    def inspections_by_village(self, month: str) -> dict[str, int]:
        """Submissions observed in a month (by the phone's local date), per village."""
        return dict(
            self.q(
                "SELECT village_code, count(*) FROM submissions"
                " WHERE substr(observed_at, 1, 7) = :month GROUP BY village_code",
                month=month,
            ).all()
        )

    def save_indicator_snapshot(self, month: str, data: dict, *, at: str) -> None:
        with self.write():
            self.q(
                "INSERT INTO indicator_snapshots (month, computed_at, data)"
                " VALUES (:month, :at, :data) ON CONFLICT (month) DO UPDATE"
                " SET computed_at = excluded.computed_at, data = excluded.data",
                month=month,
                at=at,
                data=dumps(data),
            )

    def indicator_snapshot(self, month: str) -> dict | None:
        row = self.row(
            "SELECT computed_at, data FROM indicator_snapshots WHERE month = :month", month=month
        )
        return {"month": month, **row, "data": json.loads(row["data"])} if row else None
