"""Writers wait in line rather than fail (issue 8, finding 10).

Real threads and real SQLite files. A second sqlite3 connection that takes the write lock with
plain BEGIN IMMEDIATE stands for another process (the CLI, a second server): it does not queue
with this process's writers.
"""

import sqlite3
import threading
import time

import pytest
from conftest import Phone, submission

from server.storage import DatabaseBusy, WriterQueue, connect


class OtherProcess:
    """Holds the database's write lock the way another process would, until `release()`."""

    def __init__(self, path):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self):
        self.conn.execute("COMMIT")
        self.conn.close()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "queue.db"
    store = connect(path)
    store.q("CREATE TABLE writes (writer INTEGER, n INTEGER, PRIMARY KEY (writer, n))")
    store.close()
    return path


def test_writer_queue_serves_threads_in_arrival_order():
    queue = WriterQueue()
    assert queue.acquire(1)
    order, threads = [], []
    for n in range(8):

        def wait(n=n):
            assert queue.acquire(5)
            order.append(n)
            queue.release()

        threads.append(threading.Thread(target=wait))
        threads[-1].start()
        while len(queue._turns) < n + 1:  # this thread is in line before the next arrives
            time.sleep(0.001)
    queue.release()
    for t in threads:
        t.join()
    assert order == list(range(8))
    assert queue.acquire(0)  # free again, nobody left in line


def test_writer_queue_gives_up_after_its_wait_and_leaves_the_line_clean():
    queue = WriterQueue()
    assert queue.acquire(1)
    started = time.monotonic()
    assert not queue.acquire(0.2)
    assert 0.15 < time.monotonic() - started < 2
    queue.release()
    assert queue.acquire(0)


def test_busy_writers_in_one_process_all_get_their_turn(db):
    """Eight threads writing back to back for two seconds, each allowed to wait one second.

    With SQLite's busy handler alone a waiter sleeps between polls and the writer that just
    committed takes the lock again first: waiters starve and fail with "database is locked".
    In line, each waits at most for the seven others.
    """
    errors, waits, done = [], [], []
    stop = time.monotonic() + 2.0

    def writer(w):
        store = connect(db, write_wait=1.0)
        n = 0
        try:
            while time.monotonic() < stop:
                asked = time.monotonic()
                with store.write():
                    waits.append(time.monotonic() - asked)
                    store.q("INSERT INTO writes VALUES (:w, :n)", w=w, n=n)
                    time.sleep(0.005)  # a push's work inside the transaction
                n += 1
            done.append(n)
        except Exception as exc:  # noqa: BLE001 (the test reports every failure)
            errors.append(repr(exc))
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check = connect(db)
    assert check.scalar("SELECT count(*) FROM writes") == sum(done)
    check.close()
    assert max(waits) < 0.5


def test_a_write_waits_for_another_process_then_succeeds(db):
    other = OtherProcess(db)
    threading.Timer(0.5, other.release).start()
    store = connect(db, write_wait=5.0)
    started = time.monotonic()
    with store.write():
        store.q("INSERT INTO writes VALUES (1, 1)")
    assert 0.4 < time.monotonic() - started < 3
    assert store.scalar("SELECT count(*) FROM writes") == 1
    store.close()


def test_a_write_that_cannot_get_the_lock_in_time_raises_busy_and_writes_nothing(db):
    other = OtherProcess(db)
    store = connect(db, write_wait=0.3)
    try:
        with pytest.raises(DatabaseBusy), store.write():
            store.q("INSERT INTO writes VALUES (1, 1)")
        assert not store.in_transaction()
    finally:
        other.release()
    with store.write():  # the line is free again
        store.q("INSERT INTO writes VALUES (2, 2)")
    assert store.q("SELECT writer FROM writes").all() == [(2,)]
    store.close()


def test_a_write_inside_a_read_transaction_is_refused(db):
    """Upgrading a read transaction to a write fails at once on a busy database (no waiting):
    writes must take the lock up front."""
    store = connect(db)
    with store.reading(), pytest.raises(RuntimeError), store.write():
        pass
    store.close()


# -- through the API ---------------------------------------------------------------------------


def _one(app, sql, **params):
    store = connect(app.config["DATABASE_URL"])
    try:
        return store.scalar(sql, **params)
    finally:
        store.close()


def test_a_push_that_cannot_get_the_lock_answers_503_busy_and_stores_nothing(
    app, client, facilities
):
    app.config["WRITE_WAIT_SECONDS"] = 0.5
    phone = Phone(client, "inspector")
    item = submission(facilities[("450222101001", "toilet")]["id"], phone.clock())
    other = OtherProcess(app.config["DATABASE_PATH"])
    try:
        started = time.monotonic()
        response = phone.push([item])
        assert time.monotonic() - started < 5
    finally:
        other.release()
    assert response.status_code == 503
    assert response.json["error"]["code"] == "busy"
    assert int(response.headers["Retry-After"]) > 0
    assert _one(app, "SELECT count(*) FROM submissions WHERE id = :id", id=item["id"]) == 0

    again = phone.push([item])  # the phone's outbox sends it again
    assert again.status_code == 200
    assert again.json["results"][0]["status"] in ("accepted", "waiting_for_photos")
    assert _one(app, "SELECT count(*) FROM submissions WHERE id = :id", id=item["id"]) == 1


def test_reads_take_no_write_lock_so_pulls_go_on_while_the_database_is_locked(app, client, clock):
    """Every authenticated request used to UPDATE its token's last-use time, and an UPDATE takes
    the write lock even when it changes nothing: pulls queued behind pushes and failed with
    "locked" (500)."""
    app.config["WRITE_WAIT_SECONDS"] = 0.5
    phone = Phone(client, "inspector")
    assert phone.pull().status_code == 200
    other = OtherProcess(app.config["DATABASE_PATH"])
    try:
        started = time.monotonic()
        same_minute = phone.pull()
        fast = time.monotonic() - started
        clock.advance(minutes=5)  # the token's last use is stale: touching it is best-effort
        later = phone.pull()
    finally:
        other.release()
    assert same_minute.status_code == 200 and fast < 0.3
    assert later.status_code == 200
    clock.advance(minutes=1)
    assert phone.pull().status_code == 200
    last_used = _one(
        app, "SELECT last_used_at FROM tokens WHERE device_id = :device", device=phone.device_id
    )
    assert last_used == clock.now.isoformat(timespec="milliseconds")


def test_phones_pushing_at_once_while_another_process_writes_all_succeed(app, facilities):
    """Twelve phones push five times each on real threads while another process keeps taking
    the write lock for 100 ms at a time: every push answers 200 and every item is stored once."""
    app.config["WRITE_WAIT_SECONDS"] = 10
    toilet = facilities[("450222101001", "toilet")]["id"]
    phones = [Phone(app.test_client(), "inspector") for _ in range(12)]
    statuses, sent = [], []
    stop = threading.Event()

    def other_process():
        while not stop.is_set():
            other = OtherProcess(app.config["DATABASE_PATH"])
            time.sleep(0.1)
            other.release()
            time.sleep(0.02)

    def run(phone):
        for _ in range(5):
            items = [submission(toilet, phone.clock(minutes=1)) for _ in range(2)]
            sent.extend(i["id"] for i in items)
            statuses.append(phone.push(items).status_code)

    background = threading.Thread(target=other_process)
    background.start()
    threads = [threading.Thread(target=run, args=(p,)) for p in phones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    background.join()
    assert statuses == [200] * 60
    stored = _one(app, "SELECT count(*) FROM submissions WHERE id IN :sent", sent=sent)
    assert stored == len(sent) == 120


def test_no_request_writes_outside_a_write_transaction(app, client, facilities, clock, monkeypatch):
    """A write outside Storage.write() skips the line and meets the busy handler on its own (and
    an UPDATE takes the lock even when it changes nothing): every statement that writes must run
    inside BEGIN IMMEDIATE."""
    import server.context

    autocommit_writes = []

    def traced_connect(path, **kw):
        store = connect(path, **kw)

        def trace(sql):
            if sql.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE")):
                if not store.in_transaction():
                    autocommit_writes.append(sql[:60])

        store.conn.connection.dbapi_connection.set_trace_callback(trace)
        return store

    monkeypatch.setattr(server.context, "connect", traced_connect)
    wrong = {"username": "inspector", "password": "wrong", "device_id": "trace-phone"}
    assert client.post("/api/v1/auth/login", json=wrong).status_code == 401
    phone = Phone(client, "inspector")
    phone.pull_all()
    item = submission(facilities[("450222101001", "toilet")]["id"], phone.clock())
    assert phone.push([item]).status_code == 200
    clock.advance(minutes=2)
    assert phone.pull().status_code == 200
    assert client.get("/api/v1/auth/tokens", headers=phone.headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=phone.headers).status_code == 200
    assert autocommit_writes == []
