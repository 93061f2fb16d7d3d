"""Submissions, the photos each uses, and their reviews."""

import json
from collections.abc import Iterable

from .core import dumps


def _photo_position(position: dict) -> dict:
    """The phone's fix at capture as stored: browser geolocation, which is WGS-84, says so
    (media/datum.py); a datum or source the phone gave is kept."""
    return {**position, "datum": position.get("datum", "wgs84"),
            "source": position.get("source", "browser")}  # fmt: skip


class SubmissionsMixin:
    """Submissions and reviews."""

    # -- submissions -------------------------------------------------------------------------

    def submission_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """content_hash of each already-stored submission among these ids."""
        if not (ids := list(ids)):
            return {}
        return dict(
            self.q("SELECT id, content_hash FROM submissions WHERE id IN :ids", ids=ids).all()
        )

    def insert_submissions(self, submissions: list[tuple[dict, list[dict]]]) -> None:
        """Insert submissions, each a (row, photos it uses) pair."""
        columns = (
            "id, form_id, form_version, record_id, record_type, village_code, author_id,"
            " device_id, clock, observed_at, received_at, answers, content_hash, state, skew_ms,"
            " replaces"
        )
        self.many(
            f"INSERT INTO submissions ({columns}) VALUES"
            f" ({', '.join(':' + c.strip() for c in columns.split(','))})",
            [
                {
                    **row,
                    "answers": dumps(row["answers"]),
                    "skew_ms": row.get("skew_ms"),
                    "replaces": row.get("replaces"),
                }
                for row, _ in submissions
            ],
        )
        self.many(
            "INSERT INTO submission_media (submission_id, field, sha256, captured_at, position,"
            " seq) VALUES (:submission_id, :field, :sha256, :captured_at, :position,"
            f" {self.dialect.next_seq('submission_media')}) ON CONFLICT DO NOTHING",
            [
                {
                    "submission_id": row["id"],
                    "field": p["field"],
                    "sha256": p["sha256"],
                    "captured_at": p.get("captured_at"),
                    "position": dumps(_photo_position(p["position"]))
                    if p.get("position")
                    else None,
                }
                for row, photos in submissions
                for p in photos
            ],
        )

    def submission(self, submission_id: str) -> dict | None:
        row = self.row("SELECT * FROM submissions WHERE id = :id", id=submission_id)
        if row is None:
            return None
        row["answers"] = json.loads(row["answers"])
        return row

    def villages_of_submissions(self, submission_ids) -> dict[str, str]:
        """submission id -> its village's code."""
        ids = sorted(set(submission_ids))
        if not ids:
            return {}
        return {
            r["id"]: r["village_code"]
            for r in self.rows("SELECT id, village_code FROM submissions WHERE id IN :ids", ids=ids)
        }

    def submissions_of_record(self, record_id: str) -> list[dict]:
        """A record's history: every submission about it, newest observation first.

        Ordered by the observation's clock, which differs from the clock sent when the server
        re-stamped a far-ahead one (server/push.py).
        """
        rows = self.rows(
            "SELECT s.id, s.form_id, s.form_version, s.author_id, s.device_id, s.clock,"
            " s.observed_at, s.received_at, s.state, s.answers FROM submissions s"
            " LEFT JOIN observations o ON o.id = s.id WHERE s.record_id = :record_id"
            " ORDER BY coalesce(o.clock, s.clock) DESC",
            record_id=record_id,
        )
        return [{**r, "answers": json.loads(r["answers"])} for r in rows]

    def replaced_by(self, submission_id: str) -> list[dict]:
        """The submissions that name this one as the one they replace (fix and resend)."""
        return self.rows(
            "SELECT id, state, observed_at FROM submissions WHERE replaces = :id"
            " ORDER BY received_at",
            id=submission_id,
        )

    def submission_photo_hashes(self, submission_id: str) -> list[str]:
        """The photos a submission uses, each once, in the order it first uses them."""
        return (
            self.q(
                "SELECT sha256 FROM submission_media WHERE submission_id = :submission_id"
                " GROUP BY sha256 ORDER BY min(seq)",
                submission_id=submission_id,
            )
            .scalars()
            .all()
        )

    # -- reviews -----------------------------------------------------------------------------

    def add_review(self, *, submission_id, decision, state, reason, reviewer_id, author_id, at):
        """Record a supervisor's decision; it reaches the author's phone through pull."""
        with self.write():
            self.q(
                "INSERT INTO reviews (submission_id, decision, reason, reviewer_id, at)"
                " VALUES (:submission_id, :decision, :reason, :reviewer_id, :at)",
                submission_id=submission_id,
                decision=decision,
                reason=reason,
                reviewer_id=reviewer_id,
                at=at,
            )
            self.q(
                "UPDATE submissions SET state = :state WHERE id = :id",
                state=state,
                id=submission_id,
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
        if not (ids := list(submission_ids)):
            return []
        return self.rows(
            "SELECT r.submission_id, s.state, r.decision, r.reason, r.at,"
            " u.display_name AS reviewer FROM reviews r"
            " JOIN submissions s ON s.id = r.submission_id"
            " JOIN users u ON u.id = r.reviewer_id"
            " WHERE r.id IN (SELECT max(id) FROM reviews WHERE submission_id IN :ids"
            " GROUP BY submission_id) ORDER BY r.submission_id",
            ids=ids,
        )

    # -- outcomes: what became of a submission's values -------------------------------------

    def log_outcomes(self, submission_ids: Iterable[str], *, at: str) -> None:
        """Tell these submissions' authors (through pull's `outcomes`) that what became of
        their values changed: a conflict appeared, was resolved or went away. Ids that are no
        submission (a supervisor's resolution, a server mark) are skipped."""
        if not (ids := sorted(set(submission_ids))):
            return
        rows = self.rows(
            "SELECT id, author_id, village_code FROM submissions WHERE id IN :ids", ids=ids
        )
        self.log_changes(
            [
                {
                    "entity": "outcome",
                    "entity_id": r["id"],
                    "village_code": r["village_code"],
                    "user_id": r["author_id"],
                    "at": at,
                }
                for r in rows
                if r["author_id"] is not None
            ]
        )

    def outcomes(self, submission_ids: Iterable[str]) -> list[dict]:
        """Per submission: its state and the fields on which its value is in an open conflict
        (`conflict_fields`), those where the other side's value stands meanwhile
        (`lost_fields`). docs/PROTOCOL.md, Outcomes."""
        if not (ids := sorted(set(submission_ids))):
            return []
        states = dict(self.q("SELECT id, state FROM submissions WHERE id IN :ids", ids=ids).all())
        conflicting: dict[str, set] = {}
        lost: dict[str, set] = {}
        for c in self.open_conflicts_by_side(states):
            for side in (c["a"], c["b"]):
                if side in states:
                    conflicting.setdefault(side, set()).add(c["field"])
                    if c["winner"] != side:
                        lost.setdefault(side, set()).add(c["field"])
        return [
            {
                "submission_id": sid,
                "state": states[sid],
                "conflict": sid in conflicting,
                "conflict_fields": sorted(conflicting.get(sid, ())),
                "lost_fields": sorted(lost.get(sid, ())),
            }
            for sid in sorted(states)
        ]
