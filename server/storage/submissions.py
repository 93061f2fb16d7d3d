"""Submissions, the photos each uses, and their reviews."""

import json
from collections.abc import Iterable

from .core import dumps


class SubmissionsMixin:
    """Submissions and reviews."""

    # -- submissions -------------------------------------------------------------------------

    def submission_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """content_hash of each already-stored submission among these ids."""
        return dict(
            self.conn.execute(
                "SELECT id, content_hash FROM submissions"
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
