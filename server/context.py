"""Per-request resources: the storage connection and the clock.

The clock is read through `now()` so tests can fix it (`app.config["CLOCK"]`).
"""

from datetime import UTC, datetime

from flask import current_app, g

from media.store import LocalMediaStore

from .storage import Storage, connect


def storage() -> Storage:
    """The request's database connection, opened on first use and closed at teardown."""
    if "storage" not in g:
        g.storage = connect(current_app.config["DATABASE_PATH"])
    return g.storage


def media_store() -> LocalMediaStore:
    """The photo store (a local folder; an S3-compatible store would slot in here)."""
    return LocalMediaStore(
        current_app.config["MEDIA_PATH"], max_bytes=current_app.config["MAX_PHOTO_BYTES"]
    )


def close_storage(_exc=None) -> None:
    store = g.pop("storage", None)
    if store is not None:
        store.close()


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    clock = current_app.config.get("CLOCK")
    return clock() if clock else datetime.now(UTC)


def now_iso() -> str:
    return now().isoformat(timespec="milliseconds")


def now_ms() -> int:
    return int(now().timestamp() * 1000)
