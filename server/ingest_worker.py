"""Ingest workers: process the photos in the durable queue (storage/ingest_queue.py).

The last chunk of an upload stores the photo and queues it (server/media_api.py); a worker
claims it, runs `server.ingest.ingest` (EXIF facts, display versions, perceptual hashes, the
submissions it completes judged) and removes it from the queue. Workers are threads: in each
server process (INGEST_WORKERS, started with `villagecheck serve`) or in a `villagecheck worker`
process of their own, for deployments that separate them. Threads use several cores because
Pillow releases the GIL while it decodes, resizes and encodes, which is most of an ingest.

Failure: an error counts an attempt and the photo is tried again after INGEST_RETRY_SECONDS
(doubling) until INGEST_MAX_ATTEMPTS, then it is `failed` (listed by `villagecheck worker
--failed`; the phone is told `processing_failed`). A worker killed mid-ingest leaves its claim to
expire after INGEST_CLAIM_SECONDS; another worker then claims the photo and ingests it again,
which is safe (server/ingest.py: versions are replaced atomically, the row is inserted once).
Bytes that are not a readable image are discarded and the photo is `rejected` with its code.

Tests run the queue synchronously: `drain(app)` processes everything claimable now.
"""

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from media.images import ImageRejected
from media.store import StoreUnavailable

from .context import media_store, now
from .evidence import HashCache
from .ingest import decode_gate, ingest
from .scheduler import make_holder
from .storage import DatabaseBusy, DatabaseUnavailable, Storage, connect

log = logging.getLogger("villagecheck.ingest")
EXTENSION = "villagecheck.ingest_workers"


#: How much lower ingest threads run than request threads (nice, 0-19).
INGEST_NICENESS = 10

#: How often one ingest thread per process frees the claims of this host's dead processes.
DEAD_CHECK_SECONDS = 10

#: Failures that are not the photo's: the attempt is not counted against INGEST_MAX_ATTEMPTS.
OUTAGES = (StoreUnavailable, DatabaseBusy, DatabaseUnavailable)


def worker_count(config) -> int:
    """INGEST_WORKERS, or the CPUs this process may use (at most 8) when it is None."""
    n = config["INGEST_WORKERS"]
    if n is None:
        return min(len(os.sched_getaffinity(0)), 8)
    return max(int(n), 0)


def _iso(t) -> str:
    return t.isoformat(timespec="milliseconds")


def run_once(app, store: Storage, worker: str) -> str | None:
    """Claim one queued photo and ingest it; its sha256, or None when none was claimable."""
    config = app.config
    with app.app_context():
        start = now()
        job = store.claim_ingest(
            worker,
            now=_iso(start),
            until=_iso(start + timedelta(seconds=float(config["INGEST_CLAIM_SECONDS"]))),
            max_attempts=int(config["INGEST_MAX_ATTEMPTS"]),
        )
        if job is None:
            return None
        sha256 = job["sha256"]
        try:
            ingest(
                store,
                media_store(),
                sha256,
                config=config,
                gate=decode_gate(config),
                at=_iso(start),
            )
        except ImageRejected as rejected:
            store.reject_ingest(sha256, code=rejected.code, now=_iso(now()))
            log.info("photo %s rejected: %s", sha256, rejected.code)
        except Exception as exc:
            outage = isinstance(exc, OUTAGES)
            if outage:
                log.warning("ingest of photo %s postponed: %s", sha256, exc)
            else:
                log.exception("ingest of photo %s failed (attempt %s)", sha256, job["attempts"])
            delay = float(config["INGEST_RETRY_SECONDS"]) * 2 ** (job["attempts"] - 1)
            at = now()
            state = store.fail_ingest(
                sha256,
                worker,
                error=f"{type(exc).__name__}: {exc}",
                now=_iso(at),
                retry_at=_iso(at + timedelta(seconds=delay)),
                max_attempts=int(config["INGEST_MAX_ATTEMPTS"]),
                counted=not outage,
            )
            if state == "failed":
                log.error("photo %s failed %s times; it stays held", sha256, job["attempts"])
        else:
            store.finish_ingest(sha256)
        return sha256


def drain(app, worker: str = "drain") -> list[str]:
    """Ingest every photo claimable now, one after another, in this thread (tests, `--once`)."""
    store = connect(app.config["DATABASE_URL"], write_wait=app.config["WRITE_WAIT_SECONDS"])
    done = []
    try:
        while (sha256 := run_once(app, store, worker)) is not None:
            done.append(sha256)
    finally:
        store.close()
    return done


def release_dead_claims(app, store: Storage) -> int:
    """Free the claims of ingest workers of this host whose process is gone (this server's
    earlier self, killed mid-ingest), so a restart resumes at once rather than after
    INGEST_CLAIM_SECONDS; other hosts' dead workers' claims expire."""
    host = socket.gethostname()
    dead = []
    for worker in store.ingest_claimers():
        parts = worker.split(":")
        if len(parts) >= 4 and parts[1] == host and parts[2].isdigit():
            if int(parts[2]) != os.getpid() and not _alive(int(parts[2])):
                dead.append(worker)
    with app.app_context():
        return store.release_ingest_claims(
            dead, now=_iso(now()), max_attempts=int(app.config["INGEST_MAX_ATTEMPTS"])
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _yield_cpu_to_requests() -> None:
    """Lower this thread's CPU priority (Linux: per thread), so that on a busy machine a
    phone's push and pull are served first and photos are processed with what is left."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INGEST_NICENESS)


class Workers:
    """`count` ingest threads of one process, woken at once by `notify()` after a local upload
    and every INGEST_POLL_SECONDS otherwise (photos queued by other processes)."""

    def __init__(self, app, count: int):
        self.app, self.count, self.pid = app, count, os.getpid()
        self.holder = make_holder("ingest:")
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"ingest-{i}", daemon=True)
            for i in range(count)
        ]

    def start(self) -> "Workers":
        config = self.app.config
        try:
            store = connect(config["DATABASE_URL"], write_wait=config["WRITE_WAIT_SECONDS"])
            try:
                release_dead_claims(self.app, store)
            finally:
                store.close()
        except Exception:  # the claims expire anyway
            log.exception("could not release dead ingest workers' claims")
        HashCache.warm(config["DATABASE_URL"])  # judging needs it: load it now, not on a request
        for thread in self.threads:
            thread.start()
        return self

    def notify(self) -> None:
        self.wake.set()

    def shutdown(self, timeout: float = 30) -> None:
        """Stop claiming; wait for the photos being ingested (a cut-off one is claimed again
        by someone else once its claim expires)."""
        self.stop.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout)

    def _loop(self, index: int) -> None:
        _yield_cpu_to_requests()
        config = self.app.config
        poll = float(config["INGEST_POLL_SECONDS"])
        worker, store = f"{self.holder}:{index}", None
        checked = time.monotonic()
        while not self.stop.is_set():
            self.wake.clear()
            try:
                if store is None or not store.usable():
                    store = connect(config["DATABASE_URL"], write_wait=config["WRITE_WAIT_SECONDS"])
                if index == 0 and time.monotonic() - checked > DEAD_CHECK_SECONDS:
                    # A process of this host that died after we started (a gunicorn worker
                    # outliving its killed arbiter, then stopping) left its claims behind.
                    release_dead_claims(self.app, store)
                    checked = time.monotonic()
                done = run_once(self.app, store, worker)
            except Exception:  # the database went away: try again after a pause
                log.exception("ingest worker %s: cannot reach the queue", worker)
                if store is not None:
                    store.close()
                store, done = None, None
                self.stop.wait(poll)
            if done is None:
                self.wake.wait(poll)
        if store is not None:
            store.close()


def start(app, count: int | None = None) -> Workers | None:
    """Start this process's ingest threads once (again in a forked child); None when 0."""
    running = app.extensions.get(EXTENSION)
    if running is not None and running.pid == os.getpid():
        return running
    count = worker_count(app.config) if count is None else count
    if count <= 0:
        HashCache.warm(app.config["DATABASE_URL"])  # the desk's flags still read it
        return None
    workers = Workers(app, count).start()
    app.extensions[EXTENSION] = workers
    return workers


def notify(app) -> None:
    """A photo was queued here: wake this process's idle workers (if it runs any)."""
    running = app.extensions.get(EXTENSION)
    if running is not None and running.pid == os.getpid():
        running.notify()


@click.command("worker")
@click.option("--threads", type=int, default=None, help="ingest threads (default INGEST_WORKERS)")
@click.option("--once", is_flag=True, help="process what is queued now, then exit")
@click.option("--failed", "list_failed", is_flag=True, help="list photos that failed, then exit")
@click.option("--retry-failed", is_flag=True, help="queue failed photos again, then exit")
@with_appcontext
def worker_command(threads, once, list_failed, retry_failed):
    """Process queued photos (EXIF, display versions, hashes, evidence checks) until stopped."""
    from .bootstrap import init_db
    from .context import now_iso, storage

    app = current_app._get_current_object()
    store = storage()
    init_db(store, at=now_iso())
    if list_failed:
        for row in store.ingest_entries("failed", limit=1000):
            click.echo(f"{row['sha256']} 尝试 {row['attempts']} 次  {row['last_error'] or ''}")
        return
    if retry_failed:
        click.echo(f"已重新排队 {store.retry_failed_ingest(at=now_iso())} 张照片")
        return
    if once:
        click.echo(f"已处理 {len(drain(app, make_holder('worker:')))} 张照片")
        return
    count = worker_count(app.config) if threads is None else threads
    if count <= 0:
        raise click.BadParameter("至少 1 个线程", param_hint="--threads")
    workers = Workers(app, count).start()
    app.extensions[EXTENSION] = workers
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    click.echo(f"照片处理进程已启动: {count} 个线程")
    stopped.wait()
    workers.shutdown()
