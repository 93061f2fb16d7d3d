"""The ingest queue's storage contract, on both engines (`any_store`)."""

import threading

from server.storage import connect

T0 = "2026-11-30T08:00:00.000+00:00"
T1 = "2026-11-30T08:01:00.000+00:00"
T5 = "2026-11-30T08:05:00.000+00:00"
T9 = "2026-11-30T08:09:00.000+00:00"
A, B, C = "a" * 64, "b" * 64, "c" * 64


def claim(store, worker, now=T0, until=T5, max_attempts=3):
    return store.claim_ingest(worker, now=now, until=until, max_attempts=max_attempts)


def test_enqueue_is_idempotent_and_claims_go_oldest_first(any_store):
    assert any_store.enqueue_ingest(B, at=T0) is True
    assert any_store.enqueue_ingest(B, at=T1) is False
    assert any_store.enqueue_ingest(A, at=T1) is True
    assert any_store.enqueue_ingest_many([A, B, C], at=T1) == 1
    assert any_store.ingest_counts() == {"queued": 3, "failed": 0, "rejected": 0}
    assert claim(any_store, "w1") == {"sha256": B, "attempts": 1}
    assert claim(any_store, "w2")["sha256"] == A
    assert claim(any_store, "w3")["sha256"] == C
    assert claim(any_store, "w4") is None  # every row held by a live claim
    any_store.finish_ingest(B)
    assert any_store.ingest_entry(B) is None
    assert any_store.ingest_entry(A)["claimed_by"] == "w2"


def test_an_expired_claim_is_taken_by_the_next_worker(any_store):
    any_store.enqueue_ingest(A, at=T0)
    assert claim(any_store, "dead")["attempts"] == 1
    assert claim(any_store, "w2", now=T1) is None
    taken = claim(any_store, "w2", now=T5, until=T9)
    assert taken == {"sha256": A, "attempts": 2}
    assert any_store.ingest_entry(A)["claimed_by"] == "w2"


def test_a_photo_whose_claims_keep_expiring_ends_failed(any_store):
    any_store.enqueue_ingest(A, at=T0)
    assert claim(any_store, "dead1", max_attempts=2, until=T1)["attempts"] == 1
    assert claim(any_store, "dead2", now=T1, until=T5, max_attempts=2)["attempts"] == 2
    assert claim(any_store, "w3", now=T9, max_attempts=2) is None
    entry = any_store.ingest_entry(A)
    assert entry["state"] == "failed" and entry["last_error"] == "worker stopped mid-ingest"


def test_failures_retry_later_then_end_failed_and_an_operator_can_retry(any_store):
    any_store.enqueue_ingest(A, at=T0)
    for attempt, state in ((1, "queued"), (2, "queued"), (3, "failed")):
        now = f"2026-11-30T08:1{attempt}:00.000+00:00"
        assert claim(any_store, "w", now=now, until=T9)["attempts"] == attempt
        retry = f"2026-11-30T08:1{attempt}:30.000+00:00"
        assert (
            any_store.fail_ingest(A, "w", error="boom", now=now, retry_at=retry, max_attempts=3)
            == state
        )
        assert claim(any_store, "w", now=now, until=T9) is None  # not before retry_at
    assert any_store.ingest_entries("failed")[0]["last_error"] == "boom"
    assert any_store.enqueue_ingest(A, at=T9) is False  # a failed photo stays failed
    assert any_store.retry_failed_ingest(at=T9) == 1
    assert claim(any_store, "w", now=T9, until="2026-11-30T09:00:00.000+00:00")["attempts"] == 1


def test_a_lost_claim_cannot_be_failed_by_its_former_holder(any_store):
    any_store.enqueue_ingest(A, at=T0)
    claim(any_store, "slow", until=T1)
    claim(any_store, "w2", now=T5, until=T9)
    assert any_store.fail_ingest(A, "slow", error="x", now=T5, retry_at=T5, max_attempts=3) is None
    assert any_store.ingest_entry(A)["claimed_by"] == "w2"


def test_dead_workers_claims_are_released_or_failed(any_store):
    any_store.enqueue_ingest_many([A, B], at=T0)
    claim(any_store, "dead", max_attempts=5)
    claim(any_store, "alive", max_attempts=5)
    assert any_store.ingest_claimers() == {"dead", "alive"}
    assert any_store.release_ingest_claims(["dead"], now=T1, max_attempts=5) == 1
    assert claim(any_store, "w", now=T1)["sha256"] == A
    assert any_store.release_ingest_claims(["w"], now=T1, max_attempts=2) == 1
    assert any_store.ingest_entry(A)["state"] == "failed"


def test_a_rejected_photo_is_queued_again_by_a_fresh_upload(any_store):
    any_store.enqueue_ingest(A, at=T0)
    claim(any_store, "w")
    any_store.reject_ingest(A, code="corrupt", now=T1)
    entry = any_store.ingest_entry(A)
    assert entry["state"] == "rejected" and entry["last_error"] == "corrupt"
    assert claim(any_store, "w", now=T9) is None
    assert any_store.enqueue_ingest(A, at=T5) is True
    assert any_store.ingest_entry(A)["attempts"] == 0


def test_workers_claiming_at_once_never_share_a_photo(any_store, engine_url):
    photos = [f"{i:064x}" for i in range(40)]
    any_store.enqueue_ingest_many(photos, at=T0)
    got: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def work(name: str) -> None:
        store = connect(engine_url)
        start.wait()
        mine = got.setdefault(name, [])
        while (job := claim(store, name)) is not None:
            mine.append(job["sha256"])
        store.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [sha for mine in got.values() for sha in mine]
    assert sorted(claimed) == photos  # each photo exactly once
