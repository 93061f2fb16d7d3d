"""The supervisors' and admins' pages (the desk) and the exports: read-only queries.

A method given an empty list of villages, states or ids answers without a statement.
"""

import json
from collections.abc import Iterable, Iterator

from .records import _conflict, _task


class DeskMixin:
    """The desk's queue, photos, reviews, conflicts and tasks; exports.

    Orderings on a column that may be NULL say where NULLs go (where SQLite puts them:
    first ascending, last descending), since PostgreSQL puts them at the other end.
    """

    def _record_name(self) -> str:
        """The name a submission's or conflict's record goes by: a facility's, or a task's
        Chinese title (`f` and `t` are the LEFT JOINed facility and task)."""
        return f"coalesce(f.name, {self.dialect.json_get('t.title', 'zh')})"

    # -- exports, read from a cursor a batch at a time ---------------------------------------

    def iter_export_submissions(
        self, form_id: str, village_codes: Iterable[str], *, month=None, batch: int = 1000
    ) -> Iterator[dict]:
        """A form's submissions in these villages, read from a cursor `batch` rows at a time."""
        if not (codes := sorted(village_codes)):
            return
        sql = (
            "SELECT s.id, s.form_version, s.village_code, v.name AS village_name, v.township,"
            f" s.record_id, {self._record_name()} AS record_name,"
            " s.observed_at, s.received_at, u.display_name AS author, s.device_id, s.state,"
            " s.risk_score, s.answers FROM submissions s"
            " JOIN villages v ON v.code = s.village_code"
            " LEFT JOIN facilities f ON f.id = s.record_id"
            " LEFT JOIN tasks t ON t.id = s.record_id"
            " LEFT JOIN users u ON u.id = s.author_id"
            " WHERE s.form_id = :form_id AND s.village_code IN :codes"
        )
        if month:
            sql += " AND substr(s.observed_at, 1, 7) = :month"
        sql += " ORDER BY s.village_code, s.observed_at NULLS FIRST, s.id"
        yield from self.stream(sql, batch, form_id=form_id, codes=codes, month=month)

    def iter_export_facilities(
        self, village_codes: Iterable[str], *, kind=None, batch: int = 1000
    ) -> Iterator[dict]:
        """Facilities in these villages with their current state, `batch` rows at a time."""
        if not (codes := sorted(village_codes)):
            return
        sql = (
            "SELECT f.id, f.village_code, v.name AS village_name, v.township, f.kind, f.name,"
            " f.lat, f.lon, f.state FROM facilities f JOIN villages v ON v.code = f.village_code"
            " WHERE f.village_code IN :codes"
        )
        if kind:
            sql += " AND f.kind = :kind"
        sql += " ORDER BY f.village_code, f.kind, f.name, f.id"
        yield from self.stream(sql, batch, codes=codes, kind=kind)

    def iter_village_photos(self, village_code: str, *, month=None, batch: int = 500):
        """Every photo used by a village's submissions, with what the manifest needs."""
        sql = (
            "SELECT m.sha256, m.field, m.captured_at, m.position, s.id AS submission_id,"
            " s.form_id, s.form_version, s.observed_at, s.record_id,"
            f" {self._record_name()} AS record_name,"
            " u.display_name AS author, media.mime, media.size FROM submission_media m"
            " JOIN submissions s ON s.id = m.submission_id"
            " LEFT JOIN facilities f ON f.id = s.record_id"
            " LEFT JOIN tasks t ON t.id = s.record_id"
            " LEFT JOIN users u ON u.id = s.author_id"
            " LEFT JOIN media ON media.sha256 = m.sha256 WHERE s.village_code = :code"
            " AND (media.sha256 IS NULL OR m.sha256 IN (SELECT m2.sha256 FROM submission_media m2"
            " JOIN submissions s2 ON s2.id = m2.submission_id JOIN photo_holders h"
            " ON h.sha256 = m2.sha256 AND h.user_id = s2.author_id WHERE s2.village_code = :code))"
        )
        if month:
            sql += " AND substr(s.observed_at, 1, 7) = :month"
        sql += " ORDER BY s.observed_at NULLS FIRST, s.id, m.field, m.sha256"
        yield from self.stream(sql, batch, code=village_code, month=month)

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
        codes = sorted(village_codes)
        states = None if states is None else sorted(states)
        if not codes or states == []:
            return [], 0
        where = ["s.village_code IN :codes"]
        params: dict = {"codes": codes}
        if township:
            where.append("v.township = :township")
            params["township"] = township
        if village:
            where.append("s.village_code = :village")
            params["village"] = village
        if form:
            where.append("s.form_id = :form")
            params["form"] = form
        if flag:
            where.append(
                "EXISTS (SELECT 1 FROM flags x WHERE x.submission_id = s.id AND x.code = :flag)"
            )
            params["flag"] = flag
        if states is not None:
            where.append("s.state IN :states")
            params["states"] = states
        if sampled:
            where.append(
                "EXISTS (SELECT 1 FROM sample_members m WHERE m.submission_id = s.id"
                " AND m.picked = 1)"
            )
        clause = " AND ".join(where)
        total = self.scalar(
            "SELECT count(*) FROM submissions s JOIN villages v ON v.code = s.village_code"
            f" WHERE {clause}",
            **params,
        )
        rows = self.rows(
            "SELECT s.id, s.form_id, s.form_version, s.record_id, s.record_type, s.village_code,"
            " v.name AS village_name, v.township, s.author_id, u.display_name AS author,"
            " s.observed_at, s.received_at, s.state, s.risk_score,"
            f" {self._record_name()} AS record_name,"
            f" (SELECT {self.dialect.json_array_of('DISTINCT x.code')} FROM flags x"
            "  WHERE x.submission_id = s.id) AS flag_codes,"
            " EXISTS (SELECT 1 FROM sample_members m WHERE m.submission_id = s.id"
            "  AND m.picked = 1) AS sampled"
            " FROM submissions s JOIN villages v ON v.code = s.village_code"
            " LEFT JOIN users u ON u.id = s.author_id"
            " LEFT JOIN facilities f ON f.id = s.record_id AND s.record_type = 'facility'"
            " LEFT JOIN tasks t ON t.id = s.record_id AND s.record_type = 'task'"
            f" WHERE {clause}"
            " ORDER BY coalesce(s.risk_score, -1) DESC, s.received_at DESC NULLS LAST, s.id"
            " LIMIT :limit OFFSET :offset",
            **params,
            limit=limit,
            offset=offset,
        )
        return [
            {
                **r,
                "flag_codes": sorted(json.loads(r["flag_codes"] or "[]")),
                "sampled": bool(r["sampled"]),
            }
            for r in rows
        ], total

    def desk_photos(self, submission_ids: Iterable[str]) -> list[dict]:
        """Photos of these submissions with what the server knows of each (media row if held)."""
        if not (ids := list(submission_ids)):
            return []
        rows = self.rows(
            "SELECT sm.submission_id, sm.field, sm.sha256, sm.captured_at, sm.position,"
            " m.sha256 IS NOT NULL AS held, m.mime, m.width, m.height, m.size, m.exif"
            " FROM submission_media sm LEFT JOIN media m ON m.sha256 = sm.sha256"
            " WHERE sm.submission_id IN :ids ORDER BY sm.submission_id, sm.seq",
            ids=ids,
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
        return self.rows(
            "SELECT r.id, r.decision, r.reason, r.at, r.reviewer_id,"
            " u.display_name AS reviewer FROM reviews r"
            " LEFT JOIN users u ON u.id = r.reviewer_id"
            " WHERE r.submission_id = :submission_id ORDER BY r.id",
            submission_id=submission_id,
        )

    def desk_user_names(self, ids: Iterable[int]) -> dict[int, str]:
        return dict(
            self.q(
                "SELECT id, coalesce(display_name, username) FROM users WHERE id IN :ids",
                ids=sorted({i for i in ids if i is not None}),
            ).all()
        )

    def _desk_conflict_sql(self, where: str) -> tuple[str, str]:
        """(the conflicts matching `where` with their record and village, their count)."""
        joins = (
            " FROM conflicts c LEFT JOIN facilities f ON f.id = c.record_id"
            " LEFT JOIN tasks t ON t.id = c.record_id"
            " JOIN villages v ON v.code = coalesce(f.village_code, t.village_code)"
            f" WHERE {where}"
        )
        select = (
            "SELECT c.*, coalesce(f.village_code, t.village_code) AS village_code,"
            " v.name AS village_name, v.township,"
            " CASE WHEN f.id IS NOT NULL THEN 'facility' ELSE 'task' END AS record_type,"
            f" {self._record_name()} AS record_name, f.kind"
        )
        return select + joins, "SELECT count(*)" + joins

    def desk_conflicts(
        self, village_codes: Iterable[str], *, open_only=True, limit=50, offset=0
    ) -> tuple[list[dict], int]:
        """Conflicts about records in these villages, newest first: (page, total)."""
        if not (codes := sorted(village_codes)):
            return [], 0
        where = "v.code IN :codes" + (" AND c.resolved_by IS NULL" if open_only else "")
        select, count = self._desk_conflict_sql(where)
        rows = self.rows(
            f"{select} ORDER BY c.created_at DESC NULLS LAST, c.id LIMIT :limit OFFSET :offset",
            codes=codes,
            limit=limit,
            offset=offset,
        )
        return [_conflict(r) for r in rows], self.scalar(count, codes=codes)

    def desk_conflict(self, conflict_id: str) -> dict | None:
        select, _ = self._desk_conflict_sql("c.id = :id")
        row = self.row(select, id=conflict_id)
        return _conflict(row) if row else None

    def desk_tasks(self, village_codes: Iterable[str], month: str) -> list[dict]:
        """Monthly tasks of these villages for one month ("YYYY-MM"), by township and village."""
        if not (codes := sorted(village_codes)):
            return []
        rows = self.rows(
            "SELECT t.*, v.name AS village_name, v.township FROM tasks t"
            " JOIN villages v ON v.code = t.village_code"
            " WHERE t.month = :month AND t.village_code IN :codes"
            " ORDER BY v.township, v.code, t.due_on NULLS FIRST, t.id",
            month=month,
            codes=codes,
        )
        return [_task(r) for r in rows]

    def desk_task_evidence(self, task_ids: Iterable[str]) -> list[dict]:
        """Photos of the monthly_task submissions about these tasks, newest submission first."""
        if not (ids := list(task_ids)):
            return []
        return self.rows(
            "SELECT s.record_id AS task_id, s.id AS submission_id, s.state, s.observed_at,"
            " sm.field, sm.sha256 FROM submissions s"
            " JOIN submission_media sm ON sm.submission_id = s.id"
            " WHERE s.record_type = 'task' AND s.record_id IN :ids"
            " ORDER BY s.record_id, s.clock DESC, sm.seq",
            ids=ids,
        )

    # -- published form versions (admin forms page) -------------------------------------------

    def desk_form_versions(self, village_codes: Iterable[str]) -> list[dict]:
        """Every published version of every form, by form then version: its definition, when it
        was published, and how many submissions of it these villages hold."""
        rows = self.rows(
            "SELECT form_id, version, published_at, definition FROM forms ORDER BY form_id, version"
        )
        counts = {}
        if codes := sorted(village_codes):
            counts = {
                (r["form_id"], r["form_version"]): r["n"]
                for r in self.rows(
                    "SELECT form_id, form_version, COUNT(*) AS n FROM submissions"
                    " WHERE village_code IN :codes GROUP BY form_id, form_version",
                    codes=codes,
                )
            }
        return [
            {
                "form_id": r["form_id"],
                "version": r["version"],
                "published_at": r["published_at"],
                "definition": json.loads(r["definition"]),
                "submissions": counts.get((r["form_id"], r["version"]), 0),
            }
            for r in rows
        ]
