"""Per-request resources: the storage connection, the photo store and the clock.

Connections are pooled per app: opening and closing a SQLite connection in WAL mode costs
milliseconds (the last close checkpoints the log), more than a typical request's queries.
Their writes wait in line at most WRITE_WAIT_SECONDS (`Storage.write` in storage/core.py).
A pooled connection is checked before it is handed out, so that after a database server
restart the pool's dead connections are dropped and the next request, a phone's retry, succeeds.
The clock is read through `now()` so tests can fix it (`app.config["CLOCK"]`).
"""

import contextlib
import os
import queue
import threading
from datetime import UTC, datetime

from flask import current_app, g

from media.store import LocalMediaStore, MediaStore

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


def media_store() -> MediaStore:
    """The photo store of the MEDIA_STORE setting (see `media_store_for`)."""
    return media_store_for(current_app.config)


_S3_CLIENTS: dict[tuple, object] = {}
_S3_CLIENTS_LOCK = threading.Lock()


def media_store_for(config) -> MediaStore:
    """The photo store the settings name: a local folder (MEDIA_PATH) or an S3-compatible bucket
    (S3_* settings). Cheap to call per request: the S3 client (thread-safe, with its connection
    pool) is made once per process and settings."""
    kind = str(config.get("MEDIA_STORE") or "local")
    if kind == "local":
        return LocalMediaStore(config["MEDIA_PATH"], max_bytes=config["MAX_PHOTO_BYTES"])
    if kind != "s3":
        raise ValueError(f"MEDIA_STORE must be local or s3, not {kind!r}")
    from media.s3_store import S3MediaStore, make_client

    options = {
        "endpoint_url": str(config.get("S3_ENDPOINT_URL") or ""),
        "region": str(config.get("S3_REGION") or ""),
        "access_key_id": str(config.get("S3_ACCESS_KEY_ID") or ""),
        "secret_access_key": str(config.get("S3_SECRET_ACCESS_KEY") or ""),
        "addressing_style": str(config.get("S3_ADDRESSING_STYLE") or "path"),
    }
    key = (os.getpid(), *options.values())  # a forked worker makes its own client
    with _S3_CLIENTS_LOCK:
        client = _S3_CLIENTS.get(key)
        if client is None:
            client = _S3_CLIENTS[key] = make_client(**options)
    return S3MediaStore(
        client,
        str(config.get("S3_BUCKET") or ""),
        prefix=str(config.get("S3_PREFIX") or ""),
        max_bytes=config["MAX_PHOTO_BYTES"],
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
