"""Per-request resources: the storage connection, the photo store and the clock.

Connections are pooled per app: opening and closing a SQLite connection in WAL mode costs
milliseconds (the last close checkpoints the log), more than a typical request's queries.
Their writes wait in line at most WRITE_WAIT_SECONDS (`Storage.write` in storage/core.py).
A pooled connection is checked before it is handed out, so that after a database server
restart the pool's dead connections are dropped and the next request, a phone's retry, succeeds.
The clock is read through `now()` so tests can fix it (`app.config["CLOCK"]`).
"""

import contextlib
import queue
from datetime import UTC, datetime

from flask import current_app, g

from media.store import LocalMediaStore

from .storage import DatabaseUnavailable, Storage, connect


class ConnectionPool:
    """Idle connections to one database, handed to one request at a time."""

    def __init__(self, url: str, keep: int = 8, *, write_wait: float):
        self.url, self.keep, self.write_wait = url, keep, write_wait
        self._idle: queue.LifoQueue[Storage] = queue.LifoQueue()

    def acquire(self) -> Storage:
        """An idle connection that still answers, else a new one (`DatabaseUnavailable` when
        the database cannot be reached)."""
        while True:
            try:
                store = self._idle.get_nowait()
            except queue.Empty:
                return connect(self.url, write_wait=self.write_wait)
            if _answers(store):
                return store

    def release(self, store: Storage) -> None:
        with contextlib.suppress(DatabaseUnavailable):
            store.rollback()
        if store.usable() and self._idle.qsize() < self.keep:
            self._idle.put(store)
        else:
            store.close()


def _answers(store: Storage) -> bool:
    """Whether an idle connection still works (a round trip: a server that restarted since it
    was last used has closed it); closes it when not."""
    try:
        store.scalar("SELECT 1")
    except DatabaseUnavailable:
        store.close()
        return False
    return True


def storage() -> Storage:
    """The request's database connection, taken from the pool on first use."""
    if "storage" not in g:
        config = current_app.config
        pool = current_app.extensions.setdefault(
            "villagecheck.pool",
            ConnectionPool(
                config["DATABASE_URL"],
                keep=config["SERVE_THREADS"],
                write_wait=config["WRITE_WAIT_SECONDS"],
            ),
        )
        g.storage = pool.acquire()
    return g.storage


def media_store() -> LocalMediaStore:
    """The photo store (a local folder; an S3-compatible store would slot in here)."""
    return LocalMediaStore(
        current_app.config["MEDIA_PATH"], max_bytes=current_app.config["MAX_PHOTO_BYTES"]
    )


def close_storage(_exc=None) -> None:
    store = g.pop("storage", None)
    if store is not None:
        current_app.extensions["villagecheck.pool"].release(store)


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    clock = current_app.config.get("CLOCK")
    return clock() if clock else datetime.now(UTC)


def now_iso() -> str:
    return now().isoformat(timespec="milliseconds")


def now_ms() -> int:
    return int(now().timestamp() * 1000)
