"""Connections, the writer queue, and what every aggregate uses: `write()`, `reading()`,
`dumps`, the change log and the audit log.

Writes go through `write()`, which takes SQLite's write lock up front (BEGIN IMMEDIATE) so a
transaction never fails half-way on a busy database, and nests as savepoints.

Writers wait in line. SQLite's own busy handler polls with growing sleeps, so under load a
writer that has waited longest often loses the lock to one that just arrived, and gives up with
"database is locked" after its timeout. So the threads of one process queue first come, first
served for each database file (`WriterQueue`) and only the head of the queue asks SQLite for the
lock (waiting there only for other processes: the CLI, a second server). A writer that cannot
get its turn within `write_wait` seconds raises `DatabaseBusy` before anything is written.
"""

import collections
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import sqlite_utils

from ..settings import DEFAULTS

if TYPE_CHECKING:
    from . import Storage

_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class DatabaseBusy(Exception):
    """The database stayed locked longer than the write may wait; nothing was written."""


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy" errors (ours or SQLite's own)."""
    return isinstance(exc, DatabaseBusy) or (
        isinstance(exc, sqlite3.OperationalError)
        and getattr(exc, "sqlite_errorcode", None) is not None
        and exc.sqlite_errorcode & 0xFF in _BUSY_CODES
    )


class WriterQueue:
    """A first-come-first-served lock: the writers of one process to one database file."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._turns: collections.deque[threading.Lock] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._turns.append(turn)
        if turn.acquire(timeout=max(timeout, 0)):
            return True
        with self._mutex:
            if turn in self._turns:
                self._turns.remove(turn)
                return False
        return True  # handed over just as the wait ran out: the turn is ours

    def release(self) -> None:
        with self._mutex:
            if self._turns:
                self._turns.popleft().release()  # hand over; stays held
            else:
                self._held = False


_QUEUES: dict[str, WriterQueue] = {}


_QUEUES_LOCK = threading.Lock()


def _writer_queue(path) -> WriterQueue:
    """The one queue of this process for the database file at `path`."""
    if str(path) == ":memory:":
        return WriterQueue()
    with _QUEUES_LOCK:
        return _QUEUES.setdefault(os.path.realpath(path), WriterQueue())


def dumps(value) -> str:
    """Canonical JSON: the same value always gives the same bytes."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def connect(path, *, write_wait: float = DEFAULTS["WRITE_WAIT_SECONDS"]) -> "Storage":
    """Open (creating if needed) the database file with the settings every connection needs.

    `write_wait`: seconds a write may wait in line before `DatabaseBusy`.
    """
    from . import Storage  # the whole class, assembled in __init__.py (which imports this module)

    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=write_wait
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return Storage(sqlite_utils.Database(conn), _writer_queue(path), write_wait)


class StorageBase:
    """The connection, its writes and reads, the change log and the audit log."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        queue: WriterQueue | None = None,
        write_wait: float = DEFAULTS["WRITE_WAIT_SECONDS"],
    ):
        self.db = db
        self.conn = db.conn
        self.write_wait = write_wait
        self._queue = queue or WriterQueue()
        self._reading = False

    def close(self) -> None:
        self.conn.close()

    # -- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, wait: float | None = None) -> Iterator["Storage"]:
        """One atomic write; nested calls become savepoints that roll back on their own.

        Waits its turn behind this process's other writers, then for SQLite's lock, at most
        `wait` seconds in all (default: the connection's `write_wait`); past that it raises
        `DatabaseBusy` having written nothing.
        """
        if self._reading:
            raise RuntimeError("write() inside reading(): the write lock must be taken first")
        if self.conn.in_transaction:
            with self.db.atomic():
                yield self
            return
        wait = self.write_wait if wait is None else wait
        deadline = time.monotonic() + wait
        if not self._queue.acquire(wait):
            raise DatabaseBusy(f"no write turn within {wait:g} s")
        try:
            self._begin_immediate(deadline)
            try:
                yield self
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        finally:
            self._queue.release()

    def _begin_immediate(self, deadline: float) -> None:
        """Take SQLite's write lock, letting its busy handler wait for other processes until the
        deadline."""
        remaining_ms = max(int((deadline - time.monotonic()) * 1000), 0)
        self.conn.execute(f"PRAGMA busy_timeout={remaining_ms}")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise DatabaseBusy(str(exc)) from exc
            raise
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={int(self.write_wait * 1000)}")

    @contextlib.contextmanager
    def reading(self) -> Iterator["Storage"]:
        """One read transaction: a long export sees one consistent state (WAL: never blocks
        writers)."""
        self.conn.execute("BEGIN")
        self._reading = True
        try:
            yield self
        finally:
            self._reading = False
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

    # -- change log --------------------------------------------------------------------------

    def log_change(self, entity, entity_id, *, village_code=None, user_id=None, at=None) -> int:
        """Append to the change log; the new sequence number is what pull cursors count."""
        cur = self.conn.execute(
            "INSERT INTO changes (entity, entity_id, village_code, user_id, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (entity, entity_id, village_code, user_id, at),
        )
        return cur.lastrowid

    def last_seq(self) -> int:
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]

    def changes_after(self, since: int, village_codes: Iterable[str], user_id: int, limit: int):
        """The next page of changes this user may see, oldest first."""
        return self.conn.execute(
            "SELECT seq, entity, entity_id FROM changes WHERE seq > ?"
            " AND (village_code IS NULL OR village_code IN (SELECT value FROM json_each(?)))"
            " AND (user_id IS NULL OR user_id = ?) ORDER BY seq LIMIT ?",
            (since, json.dumps(sorted(village_codes)), user_id, limit),
        ).fetchall()

    def audit(self, action, *, at, user_id=None, entity=None, entity_id=None, detail=None):
        """Append to the audit log (who did what, when); its own write when not in one."""
        with self.write():
            self.conn.execute(
                "INSERT INTO audit (at, user_id, action, entity, entity_id, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (at, user_id, action, entity, entity_id, dumps(detail) if detail else None),
            )

    def audit_entries(self, *, entity_id=None, limit=100) -> list[dict]:
        where, params = ("WHERE entity_id = ?", [entity_id]) if entity_id else ("", [])
        return list(
            self.db.query(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        )
