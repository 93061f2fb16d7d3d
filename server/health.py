"""Probes for a process manager or load balancer; no login, nothing secret in the answers.

- `GET /healthz`: the process answers (200). Touches nothing else, so a slow database never
  makes a supervisor restart healthy workers.
- `GET /readyz`: the database answers a trivial query and the photo store can be reached (and,
  for a local folder, written). 200 when both are; else 503 with the envelope's `code` naming
  the first that is not (`database_unavailable`, `photo_store_unavailable`) and `checks` saying
  which one failed. The cause goes to the log, never into the answer (it may name hosts).
"""

import logging
import os
import tempfile

from flask import Blueprint, jsonify

from .context import media_store, storage
from .errors import BUSY_RETRY_AFTER_SECONDS, error_response

bp = Blueprint("health", __name__)
log = logging.getLogger("villagecheck.health")


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


def database_ready() -> bool:
    try:
        return storage().scalar("SELECT 1") == 1
    except Exception:  # any failure means "not ready"; the cause is logged, not answered
        log.warning("readyz: database not ready", exc_info=True)
        return False


def photo_store_ready() -> bool:
    """A local folder: a file can be made and removed in it. Any other store: a lookup answers
    (one cheap request), unless the store offers its own `ready()`."""
    try:
        store = media_store()
        ready = getattr(store, "ready", None)
        if callable(ready):
            return bool(ready())
        root = getattr(store, "root", None)
        if root is not None:
            fd, path = tempfile.mkstemp(dir=root, prefix=".readyz-")
            os.close(fd)
            os.unlink(path)
            return True
        store.has("0" * 64)
        return True
    except Exception:
        log.warning("readyz: photo store not ready", exc_info=True)
        return False


@bp.get("/readyz")
def readyz():
    checks = {
        "database": "ok" if database_ready() else "unavailable",
        "photo_store": "ok" if photo_store_ready() else "unavailable",
    }
    if checks["database"] != "ok":
        code, message = "database_unavailable", "暂时连不上数据库"
    elif checks["photo_store"] != "ok":
        code, message = "photo_store_unavailable", "暂时无法读写照片存储"
    else:
        return jsonify(status="ok", checks=checks)
    response, status = error_response(503, code, message, checks=checks)
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response, status
