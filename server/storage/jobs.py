"""Scheduled jobs' leases and run log, spot-check samples, and indicators."""

import json
from collections.abc import Iterable

from .core import dumps


class JobsMixin:
    """Job leases and runs, samples and indicators."""

    # -- scheduler: job leases and the run log -----------------------------------------------

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

    # -- spot-check samples ------------------------------------------------------------------

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

    # -- indicators --------------------------------------------------------------------------

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
