"""The audit log's hash chain (issue 13): tampering is caught, appends keep one chain, retention
archives only what is older than the floor and the archive + table still verify."""

import gzip
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.audit_command import retention_days, run_retention
from server.storage import audit_chain, connect
from server.storage.audit_chain import GENESIS, verify

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _fill(store, n, *, start=NOW, step=timedelta(minutes=1)):
    for i in range(n):
        at = (start + i * step).isoformat(timespec="milliseconds")
        store.audit(
            "user.create",
            at=at,
            user_id=i + 1,
            entity="user",
            entity_id=f"u{i}",
            detail={"n": i, "名字": "张三"} if i % 2 else None,
        )


def test_a_clean_chain_verifies_from_the_genesis(any_store):
    _fill(any_store, 5)
    verdict = verify(any_store)
    assert verdict.ok and verdict.count == 5
    entries = any_store.rows("SELECT seq, prev_hash, hash FROM audit ORDER BY seq")
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    assert verdict.head == entries[-1]["hash"]


@pytest.mark.parametrize("tamper", ["update", "delete", "reorder"])
def test_verify_finds_the_first_broken_link(any_store, tamper):
    _fill(any_store, 6)
    ids = {r["seq"]: r["id"] for r in any_store.rows("SELECT id, seq FROM audit")}
    with any_store.write():
        if tamper == "update":
            any_store.q("UPDATE audit SET entity_id = 'someone-else' WHERE seq = 3")
        elif tamper == "delete":
            any_store.q("DELETE FROM audit WHERE seq = 3")
        else:  # swap the places of entries 2 and 4
            any_store.q("UPDATE audit SET seq = -1 WHERE seq = 2")
            any_store.q("UPDATE audit SET seq = 2 WHERE seq = 4")
            any_store.q("UPDATE audit SET seq = 4 WHERE seq = -1")
    verdict = verify(any_store)
    assert not verdict.ok
    expected = {"update": (3, ids[3]), "delete": (4, ids[4]), "reorder": (2, ids[4])}[tamper]
    assert (verdict.seq, verdict.entry_id) == expected
    assert {"update": "内容与哈希不符", "delete": "序号不连续", "reorder": "前一哈希不符"}[
        tamper
    ] in verdict.problem


def test_deleting_the_oldest_entries_is_caught(any_store):
    _fill(any_store, 4)
    any_store.q("DELETE FROM audit WHERE seq <= 2")
    verdict = verify(any_store)
    assert not verdict.ok and verdict.seq == 3 and "被删除" in verdict.problem


def test_an_anchor_follows_every_n_entries(any_store, monkeypatch):
    monkeypatch.setattr(audit_chain, "ANCHOR_EVERY", 3)
    _fill(any_store, 5)
    actions = [r["action"] for r in any_store.rows("SELECT action FROM audit ORDER BY seq")]
    assert actions.count("audit.anchor") == 2 and actions[2] == "user.create"
    anchor = any_store.row("SELECT detail FROM audit WHERE seq = 4")
    third = any_store.row("SELECT hash FROM audit WHERE seq = 3")
    assert json.loads(anchor["detail"]) == {"count": 3, "head": third["hash"]}
    assert verify(any_store).ok


def test_concurrent_appends_from_threads_keep_one_chain(engine_url):
    first = connect(engine_url)
    first.migrate()
    errors = []

    def worker(n):
        store = connect(engine_url)
        try:
            for i in range(8):
                store.audit("t", at=NOW.isoformat(), entity="thread", entity_id=f"{n}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    verdict = verify(first)
    assert verdict.ok and verdict.count == 32
    first.close()


def _archive_files(folder):
    return sorted(folder.glob("audit-*.jsonl.gz"))


def test_retention_archives_only_entries_older_than_the_floor(any_store, tmp_path, caplog):
    old = NOW - timedelta(days=400)
    _fill(any_store, 4, start=old)  # 400 days old
    _fill(any_store, 3, start=NOW - timedelta(days=100))  # younger than the floor
    _fill(any_store, 2, start=NOW - timedelta(days=1))
    folder = tmp_path / "archive"
    with caplog.at_level(logging.WARNING, "villagecheck.audit"):
        summary = run_retention(any_store, NOW, {"AUDIT_RETENTION_DAYS": 30}, folder=folder)
    assert "below the floor" in caplog.text  # 30 days is refused: 180 are kept
    assert summary["retention_days"] == 180 and summary["archived"] == 4
    left = any_store.rows("SELECT seq, action, at FROM audit ORDER BY seq")
    assert [e["seq"] for e in left] == [5, 6, 7, 8, 9, 10, 11]
    assert [e["action"] for e in left[-2:]] == ["audit.archive", "audit.anchor"]
    (path,) = _archive_files(folder)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        archived = [json.loads(line) for line in f]
    assert [e["seq"] for e in archived] == [1, 2, 3, 4]
    table = verify(any_store)
    assert table.ok and table.count == 7
    both = verify(any_store, folder)
    assert both.ok and both.archived == 4 and both.count == 7
    # Again, a year later: the 100-day entries are archived too, into a second file.
    later = NOW + timedelta(days=200)
    summary = run_retention(any_store, later, {"AUDIT_RETENTION_DAYS": 180}, folder=folder)
    assert summary["archived"] == 7
    assert len(_archive_files(folder)) == 2
    assert verify(any_store).ok and verify(any_store, folder).ok
    # An edited archive file is caught when verifying across it.
    first = _archive_files(folder)[0]
    with gzip.open(first, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines[1] = lines[1].replace("u1", "u9")
    with gzip.open(first, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    broken = verify(any_store, folder)
    assert not broken.ok and broken.seq == 2 and "归档中" in broken.problem


def test_retention_never_goes_below_180_days(caplog):
    assert retention_days({"AUDIT_RETENTION_DAYS": 365}) == 365
    assert retention_days({"AUDIT_RETENTION_DAYS": 180}) == 180
    assert retention_days({"AUDIT_RETENTION_DAYS": 0}) == 0  # keep everything
    with caplog.at_level(logging.WARNING, "villagecheck.audit"):
        assert retention_days({"AUDIT_RETENTION_DAYS": 179}) == 180
        assert retention_days({"AUDIT_RETENTION_DAYS": -5}) == 180
        assert retention_days({"AUDIT_RETENTION_DAYS": "x"}) == 180
    assert caplog.text.count("below the floor") == 3


def test_retention_off_keeps_everything(any_store, tmp_path):
    _fill(any_store, 3, start=NOW - timedelta(days=900))
    summary = run_retention(any_store, NOW, {"AUDIT_RETENTION_DAYS": 0}, folder=tmp_path)
    assert "archived" not in summary and any_store.scalar("SELECT count(*) FROM audit") == 4


def test_the_upgrade_chains_existing_entries_in_id_order(engine_url):
    from alembic import command

    from server.storage.schema import _alembic

    store = connect(engine_url)
    store.migrate()
    with store.write():
        command.downgrade(_alembic(store.conn), "v9")
        for i in (1, 2, 3):
            store.q(
                "INSERT INTO audit (at, action, entity_id) VALUES (:at, 'old', :e)",
                at=f"2026-01-0{4 - i}T00:00:00",
                e=f"e{i}",
            )
        store.q("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    store.migrate()
    rows = store.rows("SELECT id, seq, entity_id FROM audit ORDER BY seq")
    assert [(r["seq"], r["entity_id"]) for r in rows] == [(1, "e1"), (2, "e2"), (3, "e3")]
    store.audit("new", at="2026-01-05T00:00:00")
    verdict = verify(store)
    assert verdict.ok and verdict.count == 4
    store.close()


def test_the_cli_says_ok_then_names_the_edited_entry(app, store, tmp_path):
    def run(*args):
        return app.test_cli_runner().invoke(args=["audit", "verify", *args])

    store.audit("user.create", at=NOW.isoformat(), entity="user", entity_id="x")
    count = store.scalar("SELECT count(*) FROM audit")
    ok = run()
    assert ok.exit_code == 0 and f"审计日志完整：{count} 条" in ok.output
    entry = store.row("SELECT id, seq FROM audit ORDER BY seq DESC LIMIT 1")
    store.q("UPDATE audit SET detail = '{}' WHERE id = :id", id=entry["id"])
    broken = run()
    assert broken.exit_code == 1
    assert f"id {entry['id']} seq {entry['seq']}" in broken.output
    assert "内容与哈希不符" in broken.output
    missing = run("--archive", str(tmp_path / "nowhere"))
    assert missing.exit_code != 0 and "归档目录不存在" in missing.output


def test_the_retention_job_runs_from_the_cli_and_anchors_the_head(app, store):
    job = app.test_cli_runner().invoke(args=["run-job", "audit-retention"])
    assert job.exit_code == 0 and '"retention_days":180' in job.output
    last = store.row("SELECT action, detail FROM audit ORDER BY seq DESC LIMIT 1")
    before = store.row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1 OFFSET 1")
    assert last["action"] == "audit.anchor"
    assert json.loads(last["detail"]) == {"count": before["seq"], "head": before["hash"]}
    assert not (Path(app.instance_path) / "audit-archive").exists()  # nothing old to archive


def _append_from_a_process(url, name):
    store = connect(url)
    for i in range(15):
        store.audit("p", at="2026-11-20T02:00:00", entity_id=f"{name}{i}")
    store.close()


def test_concurrent_appends_from_processes_keep_one_chain(engine_url):
    import multiprocessing

    if not str(engine_url).startswith("postgresql"):
        pytest.skip("SQLite: its one write lock serialises processes (see the threads test)")
    store = connect(engine_url)
    store.migrate()
    store.close()  # no connection crosses the fork
    fork = multiprocessing.get_context("fork")
    procs = [
        fork.Process(target=_append_from_a_process, args=(str(engine_url), f"p{n}-"))
        for n in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = connect(engine_url)
    verdict = verify(store)
    assert verdict.ok and verdict.count == 45
    store.close()


def test_an_archive_whose_delete_rolled_back_is_replaced_not_doubled(any_store, tmp_path):
    _fill(any_store, 3, start=NOW - timedelta(days=400))
    cut = (NOW - timedelta(days=180)).isoformat()
    with pytest.raises(RuntimeError), any_store.write():
        audit_chain.archive_older_than(any_store, cut, tmp_path, at=NOW.isoformat())
        raise RuntimeError("the commit never happens")
    assert any_store.scalar("SELECT count(*) FROM audit") == 3 and _archive_files(tmp_path)
    _fill(any_store, 1, start=NOW - timedelta(days=300))
    summary = audit_chain.archive_older_than(any_store, cut, tmp_path, at=NOW.isoformat())
    (path,) = _archive_files(tmp_path)
    assert summary["archived"] == 4 and path.stat().st_mode & 0o777 == 0o640
    assert verify(any_store, tmp_path).ok
