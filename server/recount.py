"""A supervisor's review, and the recount it may cause: a rejected submission stops counting.

A record is the merge of its observations that count: every observation except a rejected
submission's. Rejecting a submission (or re-approving a rejected one: any later decision other
than 退回) changes that set, so the record's fields and its conflicts are rebuilt from scratch
out of the set (`sync.merge.merge_accepted`, the same fold a push uses) in the same
transaction as the review, with the record locked as a push locks it. The rebuilt record goes
into the change log, so phones get it on their next pull; the authors of submissions whose
conflicts appeared, vanished or changed resolver are told too (their `outcomes` in pull).

The floor of the rebuild is the record's registration (kept as an observation with the
record's id, server/storage/records.py `insert_facility`) and any entry no observation wrote.
A record stored before registrations were kept (or a task's initial fields) has no such floor
for an entry an observation has since overwritten: if every report of that field is then
rejected, the field is left empty until the next accepted report.
"""

from sync import review
from sync.clock import decode
from sync.merge import Observation, apply, base_entries, merge_accepted

from .push import conflict_row
from .storage import Storage

REJECTED = "rejected"


def counts(state: str | None) -> bool:
    """Whether a submission in this state counts towards its record."""
    return state != REJECTED


def window_ms_of(config) -> int:
    return int(config["CONFLICT_WINDOW_HOURS"] * 3600 * 1000)


def decide(
    store: Storage,
    submission_id: str,
    *,
    decision: str,
    reason: str | None,
    reviewer_id: int,
    window_ms: int,
    at: str,
) -> str:
    """Record a supervisor's decision (already checked by `sync.review.decide`) and recount
    the record when the submission starts or stops counting; returns the new state."""
    state = review.STATES[decision]
    with store.write():
        row = store.submission(submission_id)
        record_id = row["record_id"]
        store.lock_records([record_id])
        before = store.submission(submission_id)["state"]  # after the lock: the current one
        store.add_review(
            submission_id=submission_id,
            decision=decision,
            state=state,
            reason=reason,
            reviewer_id=reviewer_id,
            author_id=row["author_id"],
            at=at,
        )
        if counts(before) != counts(state):
            recount(store, row.get("record_type") or "facility", record_id, window_ms, at=at)
    return state


def _observation(row: dict) -> Observation:
    return Observation(
        id=row["id"],
        record_id=row["record_id"],
        clock=decode(row["clock"]),
        fields=row["fields"],
        base={k: decode(v) for k, v in row["base"].items()},
    )


def recount(store: Storage, record_type: str, record_id: str, window_ms: int, *, at: str) -> None:
    """Rebuild one record and its conflicts from the observations that count (inside a write
    holding the record's lock)."""
    record = store.record(record_type, record_id)
    if record is None:
        return
    rows = store.observations_of_record(record_id)
    base = base_entries(record["state"], (r["id"] for r in rows))
    for row in rows:
        if row["id"] == record_id:  # the registration: the floor, never a conflict side
            base = apply(base, _observation(row))
    reports = [_observation(r) for r in rows if r["counted"] and r["id"] != record_id]
    result = merge_accepted(base, reports, window_ms)
    if result.state != record["state"]:
        store.set_record_states(
            record_type,
            [{"id": record_id, "state": result.state, "village_code": record["village_code"]}],
            at=at,
        )
    changed = store.replace_conflicts(
        record_id, [conflict_row(c, by) for c, by in result.conflicts], at=at
    )
    if changed:
        # The record's open conflicts are part of what a phone pulls for it.
        store.log_change(record_type, record_id, village_code=record["village_code"], at=at)
        store.log_outcomes({side for c in changed for side in (c["a"], c["b"])}, at=at)
