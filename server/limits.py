"""Bounds on costly work per process: photo decodes (memory), password hashes (memory and CPU).

A gate lets at most `limit` callers in at once; the rest wait their turn rather than fail, so
a burst of 49 MP photos or of logins costs bounded memory instead of crashing the server.
"""

import contextlib
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_gates: dict[tuple[str, int], "Gate"] = {}


class Gate:
    """At most `limit` holders of `slot()` at once; `active` and `peak` show how many were."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("a gate's limit must be at least 1")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._count = threading.Lock()
        self.active = 0
        self.peak = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            with self._count:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                yield
            finally:
                with self._count:
                    self.active -= 1


def gate(name: str, limit: int) -> Gate:
    """This process's gate `name` with this limit (shared by every app, thread and job)."""
    with _lock:
        return _gates.setdefault((name, int(limit)), Gate(int(limit)))
