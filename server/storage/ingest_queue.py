"""The ingest queue: photos held but not yet processed, claimed one at a time by ingest workers
(server/ingest_worker.py).

A row is `queued` until a worker finishes it (the row is then deleted: the media row is the
truth), `failed` once it has been tried INGEST_MAX_ATTEMPTS times (kept, for the desk and the
`villagecheck worker --failed` listing), or `rejected` when the bytes are not a readable image
(kept so the phone is told why; a fresh upload of the same hash queues it again).

Claiming is one atomic statement on both engines: an UPDATE of the oldest claimable row chosen
by a subquery that, on PostgreSQL, locks it and skips rows other claimers hold
(`dialect.skip_locked`); on SQLite the write lock admits one claimer at a time. A claim lasts
until `claim_until`; a worker killed mid-ingest never finishes or fails its row, so the claim
expires and the next claimer takes it again (ingest is idempotent). A photo whose claims keep
expiring (it kills its worker, e.g. out of memory) is marked failed like any other.
Times are ISO 8601 UTC text, compared as text (as job leases are).
"""

from collections.abc import Iterable

QUEUED, FAILED, REJECTED = "queued", "failed", "rejected"


class IngestQueueMixin:
    """Enqueue, claim, finish, fail and list photos waiting for ingest."""

    def enqueue_ingest(self, sha256: str, *, at: str) -> bool:
        """Queue a held photo (nothing if it is queued or failed already; a rejected one is
        queued again, its bytes being a fresh upload). True when the photo is now queued anew."""
        with self.write():
            return (
                self.q(
                    "INSERT INTO ingest_queue (sha256, state, attempts, enqueued_at, updated_at)"
                    " VALUES (:sha256, 'queued', 0, :at, :at) ON CONFLICT (sha256) DO UPDATE SET"
                    " state = 'queued', attempts = 0, claimed_by = NULL, claim_until = NULL,"
                    " last_error = NULL, enqueued_at = excluded.enqueued_at,"
                    " updated_at = excluded.updated_at WHERE ingest_queue.state = 'rejected'"
                    " RETURNING sha256",
                    sha256=sha256,
                    at=at,
                ).first()
                is not None
            )

    def enqueue_ingest_many(self, hashes: Iterable[str], *, at: str) -> int:
        """Queue these held photos unless already in the queue (any state); how many were."""
        hashes = sorted(set(hashes))
        if not hashes:
            return 0
        with self.write():
            before = self.scalar("SELECT count(*) FROM ingest_queue")
            self.many(
                "INSERT INTO ingest_queue (sha256, state, attempts, enqueued_at, updated_at)"
                " VALUES (:sha256, 'queued', 0, :at, :at) ON CONFLICT (sha256) DO NOTHING",
                [{"sha256": h, "at": at} for h in hashes],
            )
            return self.scalar("SELECT count(*) FROM ingest_queue") - before

    def claim_ingest(self, worker: str, *, now: str, until: str, max_attempts: int) -> dict | None:
        """The oldest queued photo no live claim holds, claimed by `worker` until `until`:
        {sha256, attempts} (attempts counts this one), or None when there is none.

        First, rows whose claim expired with `max_attempts` used (their worker died each
        time) are marked failed, so a photo that kills its worker is not claimed forever.

        An idle queue is answered by one read, without taking the write lock (idle workers of
        every process ask every INGEST_POLL_SECONDS)."""
        claimable = (
            "SELECT 1 FROM ingest_queue WHERE state = 'queued'"
            " AND (claim_until IS NULL OR claim_until <= :now) LIMIT 1"
        )
        if not self.in_transaction() and self.q(claimable, now=now).first() is None:
            return None
        with self.write():
            self.q(
                "UPDATE ingest_queue SET state = 'failed', claimed_by = NULL, updated_at = :now,"
                " last_error = coalesce(last_error, :why) WHERE state = 'queued'"
                " AND claimed_by IS NOT NULL AND claim_until <= :now AND attempts >= :max",
                now=now,
                max=max_attempts,
                why="worker stopped mid-ingest",
            )
            return self.row(
                "UPDATE ingest_queue SET claimed_by = :worker, claim_until = :until,"
                " attempts = attempts + 1, updated_at = :now WHERE state = 'queued' AND sha256 ="
                " (SELECT sha256 FROM ingest_queue WHERE state = 'queued'"
                " AND (claim_until IS NULL OR claim_until <= :now)"
                f" ORDER BY enqueued_at, sha256 LIMIT 1{self.dialect.skip_locked()})"
                " RETURNING sha256, attempts",
                worker=worker,
                until=until,
                now=now,
            )

    def ingest_claimers(self) -> set[str]:
        """Who holds a claim now (live or expired)."""
        return set(
            self.q(
                "SELECT DISTINCT claimed_by FROM ingest_queue WHERE claimed_by IS NOT NULL"
            ).scalars()
        )

    def release_ingest_claims(self, workers: Iterable[str], *, now: str, max_attempts: int) -> int:
        """Free the claims of workers known to be dead (a restarted process's earlier self):
        claimable again at once, or failed if they used `max_attempts`. How many were freed."""
        workers = sorted(set(workers))
        if not workers:
            return 0
        with self.write():
            return len(
                self.q(
                    "UPDATE ingest_queue SET claimed_by = NULL, claim_until = NULL,"
                    " updated_at = :now, last_error = coalesce(last_error, :why),"
                    " state = CASE WHEN attempts >= :max THEN 'failed' ELSE state END"
                    " WHERE claimed_by IN :workers AND state = 'queued' RETURNING sha256",
                    workers=workers,
                    now=now,
                    max=max_attempts,
                    why="worker stopped mid-ingest",
                ).all()
            )

    def finish_ingest(self, sha256: str) -> None:
        """The photo is processed (its media row committed): it leaves the queue."""
        with self.write():
            self.q("DELETE FROM ingest_queue WHERE sha256 = :sha256", sha256=sha256)

    def fail_ingest(
        self,
        sha256: str,
        worker: str,
        *,
        error: str,
        now: str,
        retry_at: str,
        max_attempts: int,
        counted: bool = True,
    ) -> str | None:
        """An attempt by `worker` failed: queued again from `retry_at`, or failed for good once
        `max_attempts` were made. An attempt that could not run (the photo store or the database
        was out: not the photo's fault) is not `counted`. The state reached (None if the claim
        was no longer ours)."""
        with self.write():
            return self.scalar(
                "UPDATE ingest_queue SET claimed_by = NULL, claim_until = :retry_at,"
                " attempts = attempts - :uncounted, last_error = :error, updated_at = :now,"
                " state = CASE WHEN attempts - :uncounted >= :max THEN 'failed' ELSE 'queued' END"
                " WHERE sha256 = :sha256 AND claimed_by = :worker AND state = 'queued'"
                " RETURNING state",
                sha256=sha256,
                worker=worker,
                error=error[-2000:],
                now=now,
                retry_at=retry_at,
                max=max_attempts,
                uncounted=0 if counted else 1,
            )

    def reject_ingest(self, sha256: str, *, code: str, now: str) -> None:
        """The bytes are not a readable image (they were discarded): remember why."""
        with self.write():
            self.q(
                "UPDATE ingest_queue SET state = 'rejected', claimed_by = NULL,"
                " claim_until = NULL, last_error = :code, updated_at = :now"
                " WHERE sha256 = :sha256",
                sha256=sha256,
                code=code,
                now=now,
            )

    def retry_failed_ingest(self, *, at: str) -> int:
        """Queue every failed photo again with fresh attempts (an operator's decision)."""
        with self.write():
            return len(
                self.q(
                    "UPDATE ingest_queue SET state = 'queued', attempts = 0, claimed_by = NULL,"
                    " claim_until = NULL, updated_at = :at WHERE state = 'failed'"
                    " RETURNING sha256",
                    at=at,
                ).all()
            )

    def ingest_entry(self, sha256: str) -> dict | None:
        return self.row(
            "SELECT sha256, state, attempts, claimed_by, claim_until, last_error, enqueued_at,"
            " updated_at FROM ingest_queue WHERE sha256 = :sha256",
            sha256=sha256,
        )

    def ingest_states(self, hashes: Iterable[str]) -> dict[str, dict]:
        """sha256 -> {state, attempts, last_error} of these photos that are in the queue."""
        hashes = sorted(set(hashes))
        if not hashes:
            return {}
        return {
            r["sha256"]: r
            for r in self.rows(
                "SELECT sha256, state, attempts, last_error FROM ingest_queue"
                " WHERE sha256 IN :hashes",
                hashes=hashes,
            )
        }

    def ingest_entries(self, state: str | None = None, limit: int = 100) -> list[dict]:
        where = "WHERE state = :state" if state else ""
        return self.rows(
            "SELECT sha256, state, attempts, claimed_by, claim_until, last_error, enqueued_at,"
            f" updated_at FROM ingest_queue {where} ORDER BY enqueued_at, sha256 LIMIT :limit",
            state=state,
            limit=limit,
        )

    def ingest_counts(self) -> dict[str, int]:
        """How many photos are queued, failed and rejected."""
        counts = {QUEUED: 0, FAILED: 0, REJECTED: 0}
        for state, n in self.q("SELECT state, count(*) FROM ingest_queue GROUP BY state"):
            counts[state] = n
        return counts
