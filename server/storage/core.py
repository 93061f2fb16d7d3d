"""Connections, transactions and what every aggregate uses: `write()`, `reading()`, the query
helpers (`q`, `rows`, `row`, `scalar`, `many`), `dumps`, the change log and the audit log.

One SQL layer for both engines: SQLAlchemy Core over sqlite3 or psycopg 3, chosen by the
database URL (`connect`). Statements are written once as `text()` with named parameters; a list
bound to `IN :name` expands. What the engines spell differently is in dialect.py.

Transactions are ours, not the driver's: connections run in autocommit mode and `write()`
issues BEGIN/COMMIT itself (BEGIN IMMEDIATE on SQLite, so a transaction never fails half-way on
a busy file), nesting as savepoints.

On SQLite, writers wait in line. SQLite's own busy handler polls with growing sleeps, so under
load a writer that has waited longest often loses the lock to one that just arrived, and gives
up with "database is locked" after its timeout. So the threads of one process queue first come,
first served for each database file (`WriterQueue`) and only the head of the queue asks SQLite
for the lock (waiting there only for other processes: the CLI, a second server). On PostgreSQL
writers run side by side, holding locks on the records they merge (`lock_records`). A writer
that cannot get its turn within `write_wait` seconds raises `DatabaseBusy` before anything is
written; a database that cannot be reached raises `DatabaseUnavailable`.
"""

import collections
import contextlib
import functools
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from sqlalchemy import TextClause, bindparam, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.pool import NullPool

from ..settings import DEFAULTS
from . import audit_chain
from .dialect import CHANGE_LOG_KEY, Dialect, dialect_for, record_key

if TYPE_CHECKING:
    from . import Storage


class DatabaseBusy(Exception):
    """The database stayed locked longer than the write may wait; nothing was written."""


class DatabaseUnavailable(Exception):
    """The database could not be reached, or the connection dropped; nothing was written."""


_SQLITE = dialect_for("sqlite")


def is_busy(exc: BaseException) -> bool:
    """True for "database is locked"/"busy" errors (ours or SQLite's own)."""
    return isinstance(exc, DatabaseBusy) or _SQLITE.is_busy(exc)


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


def _writer_queue(path: str | None) -> WriterQueue:
    """The one queue of this process for the SQLite file at `path`."""
    if not path or path == ":memory:":
        return WriterQueue()
    with _QUEUES_LOCK:
        return _QUEUES.setdefault(os.path.realpath(path), WriterQueue())


def dumps(value) -> str:
    """Canonical JSON: the same value always gives the same bytes."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def database_url(target) -> str:
    """A SQLAlchemy URL from a URL or a SQLite file path."""
    target = str(target)
    if "://" in target:
        return target
    return "sqlite://" if target == ":memory:" else f"sqlite:///{os.path.abspath(target)}"


def _sqlite_settings(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """The process's engine for `url`. Connections are pooled by the caller (one `Storage`
    holds one connection), so the engine keeps none (NullPool)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            sqlite = url.startswith("sqlite")
            engine = create_engine(
                url,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                connect_args={"check_same_thread": False} if sqlite else {"connect_timeout": 5},
            )
            if sqlite:
                event.listen(engine, "connect", _sqlite_settings)
            _ENGINES[url] = engine
        return engine


def connect(target, *, write_wait: float = DEFAULTS["WRITE_WAIT_SECONDS"]) -> "Storage":
    """Open the database at `target` (a SQLite file path or a database URL), creating an empty
    SQLite file if needed.

    `write_wait`: seconds a write may wait for its turn before `DatabaseBusy`.
    """
    from . import Storage  # the whole class, assembled in __init__.py (which imports this module)

    engine = engine_for(database_url(target))
    dialect = dialect_for(engine.dialect.name)
    try:
        conn = engine.connect()
    except sa_exc.DBAPIError as exc:
        raise DatabaseUnavailable(str(exc.orig)) from exc
    queue = _writer_queue(engine.url.database) if dialect.single_writer else None
    return Storage(conn, dialect, queue, write_wait)


_LIST_PARAM = re.compile(r"\b(NOT\s+)?IN\s+:(\w+)", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _statement(sql: str, dialect: Dialect) -> tuple[TextClause, tuple[str, ...]]:
    """The compiled-once `text()` of `sql` for `dialect`, and the names of its list parameters
    (those bound to `IN :name`, spelled by the dialect: see `Dialect.in_list`)."""
    names = tuple(dict.fromkeys(m.group(2) for m in _LIST_PARAM.finditer(sql)))
    if dialect.expands_lists:
        statement = text(sql).bindparams(*[bindparam(n, expanding=True) for n in names])
    else:
        statement = text(_LIST_PARAM.sub(lambda m: dialect.in_list(m.group(2), m.group(1)), sql))
    return statement, names


class StorageBase:
    """The connection, its writes and reads, the change log and the audit log."""

    def __init__(
        self,
        conn: Connection,
        dialect: Dialect,
        queue: WriterQueue | None = None,
        write_wait: float = DEFAULTS["WRITE_WAIT_SECONDS"],
    ):
        self.conn = conn
        self.dialect = dialect
        self.write_wait = write_wait
        self._queue = queue or WriterQueue()
        self._depth = 0
        self._reading = False
        self._locked: set[int] = set()
        self._changes: list[dict] = []
        if dialect.name == "sqlite":
            self._exec(f"PRAGMA busy_timeout={int(write_wait * 1000)}")

    def close(self) -> None:
        self.conn.close()

    # -- statements --------------------------------------------------------------------------

    def q(self, sql: str, /, **params) -> CursorResult:
        """Run one statement with named parameters; `IN :name` takes any iterable."""
        statement = self._bound(sql, params)
        with self._translated():
            return self.conn.execute(statement, params)

    def _bound(self, sql: str, params: dict) -> TextClause:
        """The statement for `sql`; its list parameters (any iterable) made lists."""
        statement, lists = _statement(sql, self.dialect)
        for name in lists:
            params[name] = list(params[name])
        return statement

    def rows(self, sql: str, /, **params) -> list[dict]:
        return [dict(r) for r in self.q(sql, **params).mappings()]

    def row(self, sql: str, /, **params) -> dict | None:
        found = self.q(sql, **params).mappings().first()
        return dict(found) if found is not None else None

    def scalar(self, sql: str, /, **params):
        return self.q(sql, **params).scalar()

    def many(self, sql: str, params: list[dict]) -> None:
        """Run one statement for each parameter set, in one round of the driver (executemany)."""
        if params:
            with self._translated():
                self.conn.execute(_statement(sql, self.dialect)[0], params)

    def stream(self, sql: str, batch: int, /, **params) -> Iterator[dict]:
        """The rows of `sql`, fetched `batch` at a time: on PostgreSQL through a server-side
        cursor, so a province's export never sits in memory whole. Such a cursor lives in a
        transaction: the caller's `reading()`, or one of its own."""
        statement = self._bound(sql, params)
        own = contextlib.nullcontext() if self.in_transaction() else self.reading()
        with own, self._translated():
            result = self.conn.execute(
                statement, params, execution_options={"stream_results": True, "yield_per": batch}
            )
            try:
                for row in result.mappings():
                    yield dict(row)
            finally:
                result.close()

    def _exec(self, statement: str) -> None:
        with self._translated():
            self.conn.exec_driver_sql(statement)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors meaning "busy" or "unreachable" become ours, which the API answers
        with 503 and a code the phone retries on."""
        try:
            yield
        except sa_exc.DBAPIError as exc:
            if self.dialect.is_unavailable(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            if self.dialect.is_busy(exc):
                raise DatabaseBusy(str(exc.orig)) from exc
            raise

    # -- transactions ------------------------------------------------------------------------

    def in_transaction(self) -> bool:
        if self.conn.invalidated or self.conn.closed:
            return False
        return self.dialect.in_transaction(self.conn.connection.dbapi_connection)

    def usable(self) -> bool:
        """False once the connection has dropped (the pool then opens a new one)."""
        return not (self.conn.invalidated or self.conn.closed)

    def rollback(self) -> None:
        """End whatever transaction a failed request left open."""
        if self.in_transaction():
            self._exec("ROLLBACK")

    @contextlib.contextmanager
    def write(self, wait: float | None = None) -> Iterator["Storage"]:
        """One atomic write; nested calls become savepoints that roll back on their own.

        Waits its turn (SQLite: behind this process's other writers, then for the file's lock)
        at most `wait` seconds (default: the connection's `write_wait`); past that it raises
        `DatabaseBusy` having written nothing.
        """
        if self._reading:
            raise RuntimeError("write() inside reading(): the write lock must be taken first")
        if self._depth:
            yield from self._savepoint()
            return
        wait = self.write_wait if wait is None else wait
        deadline = time.monotonic() + wait
        single = self.dialect.single_writer
        if single and not self._queue.acquire(wait):
            raise DatabaseBusy(f"no write turn within {wait:g} s")
        try:
            self._begin_write(deadline)
            self._depth = 1
            try:
                yield self
                self._append_changes()
                self._exec("COMMIT")
            except BaseException:
                self._abandon()
                raise
            finally:
                self._depth = 0
                self._locked.clear()
                self._changes.clear()
        finally:
            if single:
                self._queue.release()

    def _savepoint(self) -> Iterator["Storage"]:
        name = f"sp{self._depth}"
        self._exec(f"SAVEPOINT {name}")
        self._depth += 1
        logged, locked = len(self._changes), set(self._locked)
        try:
            yield self
        except BaseException:
            del self._changes[logged:]
            self._locked = locked  # PostgreSQL drops locks taken in a rolled-back savepoint
            if self.usable():
                self._exec(f"ROLLBACK TO SAVEPOINT {name}")
                self._exec(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self._exec(f"RELEASE SAVEPOINT {name}")
        finally:
            self._depth -= 1

    def _abandon(self) -> None:
        """Roll back after a failure; a dropped connection has already lost the transaction."""
        with contextlib.suppress(DatabaseUnavailable, sa_exc.DBAPIError):
            self.rollback()

    def _begin_write(self, deadline: float) -> None:
        """Start the write, letting it wait for other writers' locks until the deadline."""
        remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
        if self.dialect.name == "sqlite":
            self._exec(f"PRAGMA busy_timeout={remaining_ms}")
            try:
                self._exec(self.dialect.begin_write())
            finally:
                self._exec(f"PRAGMA busy_timeout={int(self.write_wait * 1000)}")
        else:
            self._exec(self.dialect.begin_write())
            self._exec(f"SET LOCAL lock_timeout = {remaining_ms}")

    def lock_records(self, record_ids: Iterable[str]) -> None:
        """Hold these records until the write ends, so that concurrent merges of one record
        run one after another (PostgreSQL; SQLite's write lock already serialises writes).
        The change log's own lock is always taken last, at commit."""
        self._lock([record_key(r) for r in record_ids])

    def _lock(self, keys: list[int]) -> None:
        if not self._depth:
            raise RuntimeError("locks are held by a write: take them inside write()")
        fresh = [k for k in keys if k not in self._locked]
        for sql, params in self.dialect.lock_statements(fresh):
            self.q(sql, **params)
        self._locked.update(fresh)

    @contextlib.contextmanager
    def reading(self) -> Iterator["Storage"]:
        """One read transaction: a long export sees one consistent state (never blocks
        writers)."""
        self._exec(self.dialect.begin_read())
        self._reading = True
        try:
            yield self
        finally:
            self._reading = False
            if self.in_transaction():
                self._exec("COMMIT")

    # -- change log --------------------------------------------------------------------------

    def log_change(self, entity, entity_id, *, village_code=None, user_id=None, at=None) -> None:
        """Append to the change log (what pull cursors count) when the write commits."""
        self.log_changes(
            [
                {
                    "entity": entity,
                    "entity_id": entity_id,
                    "village_code": village_code,
                    "user_id": user_id,
                    "at": at,
                }
            ]
        )

    def log_changes(self, changes: list[dict]) -> None:
        """Append changes (dicts of `log_change`'s arguments) when the write commits.

        They are held until then and written last, in one statement: on PostgreSQL the change
        log's lock (which makes sequence numbers follow commit order) is then held only for
        that insert and the commit, not for the whole write.
        """
        rows = [{"village_code": None, "user_id": None, "at": None, **c} for c in changes]
        if self._depth:
            self._changes.extend(rows)
            return
        with self.write():
            self._changes.extend(rows)

    def _append_changes(self) -> None:
        if self._changes:
            self._lock([CHANGE_LOG_KEY])
            self.many(
                "INSERT INTO changes (entity, entity_id, village_code, user_id, at)"
                " VALUES (:entity, :entity_id, :village_code, :user_id, :at)",
                self._changes,
            )

    def last_seq(self) -> int:
        return self.scalar("SELECT coalesce(max(seq), 0) FROM changes")

    def changes_after(self, since: int, village_codes: Iterable[str], user_id: int, limit: int):
        """The next page of changes this user may see, oldest first: (seq, entity, entity_id)."""
        return self.q(
            "SELECT seq, entity, entity_id FROM changes WHERE seq > :since"
            " AND (village_code IS NULL OR village_code IN :codes)"
            " AND (user_id IS NULL OR user_id = :user_id) ORDER BY seq LIMIT :limit",
            since=since,
            codes=sorted(village_codes),
            user_id=user_id,
            limit=limit,
        ).all()

    def audit(self, action, *, at, user_id=None, entity=None, entity_id=None, detail=None):
        """Append to the audit log (who did what, when); its own write when not in one.

        The log is a hash chain (audit_chain.py): on PostgreSQL the append holds the chain's
        lock until the write commits, so the audit call is best made late in a long write."""
        with self.write():
            audit_chain.append(
                self,
                {
                    "at": at,
                    "user_id": user_id,
                    "action": action,
                    "entity": entity,
                    "entity_id": entity_id,
                    "detail": dumps(detail) if detail else None,
                },
            )

    def audit_entries(self, *, entity_id=None, limit=100) -> list[dict]:
        where = "WHERE entity_id = :entity_id" if entity_id else ""
        return self.rows(
            f"SELECT * FROM audit {where} ORDER BY seq DESC LIMIT :limit",
            entity_id=entity_id,
            limit=limit,
        )
