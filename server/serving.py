"""The HTTP server of `villagecheck serve`: gunicorn worker processes, safe without a proxy.

gunicorn's arbiter forks SERVE_WORKERS worker processes; each creates its own app after the
fork (`create_app()`, so no database connection crosses a fork) and serves with gunicorn's
threaded worker, with SERVE_THREADS threads. The stock threaded worker hands every new
connection to a thread, which waits up to 5 s for its first byte and then reads the rest of the
headers and the body with no time limit: a client that sends nothing holds a thread for 5 s, one
trickling its headers holds it for ever, and a few such clients stop the process (the tests in
tests/test_serve_limits.py all fail against it). `GuardedThreadWorker` adds what the server
gave before:

- a lobby on the worker's main loop holds every connection until its request headers are
  complete (including the TLS handshake, done without blocking): a client that connects and
  waits, or trickles its headers, holds a socket but no thread, and is closed when its headers
  are not complete within REQUEST_TIMEOUT_SECONDS of its connection (or of its last answer,
  on a kept-alive connection);
- the threads serve complete requests only, and each read of the body (and each write of the
  answer) times out after REQUEST_TIMEOUT_SECONDS (the app then answers 408 `request_timeout`);
- at most SERVE_MAX_CONNECTIONS connections per worker process: at the bound the oldest
  idle or waiting connection is dropped for the new one, and when every connection is being
  served the worker stops accepting, so new clients wait in the kernel's listen backlog;
- a connection is closed without waiting for the client (gunicorn's own close lingers up to
  2 s on the main loop for each client that keeps its end open).

Scheduled jobs run in exactly one worker: the arbiter gives that role to one worker when it
forks it, and again to the worker it forks in its place when that one dies (`pre_fork`,
`child_exit`, `on_reload` below). Not in the arbiter itself: it forks workers at any time,
and a fork while a scheduler thread holds a database connection would copy that connection
into the child. The database lease (`job_leases`) still decides each run, so the old and the
new holder overlapping during a restart, or several servers, still run each job once.
"""

import errno
import selectors
import socket
import ssl
import time
from functools import partial

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.http import get_parser
from gunicorn.workers.gthread import TConn, ThreadWorker

from .logs import JsonFormatter

HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024  # a request whose headers are longer is dropped in the lobby
STOP_LINGER_SECONDS = 2.0  # a stopping worker keeps waiting connections this long at most


class GuardedConn(TConn):
    """A connection, with the header bytes the lobby read before a thread took it."""

    def __init__(self, cfg, sock, client, server, *, timeout: float):
        super().__init__(cfg, sock, client, server)
        self.request_timeout = timeout
        self.head = bytearray()
        self.handshaken = not isinstance(sock, ssl.SSLSocket)
        self.want_write = False

    def init(self) -> None:
        """In a thread, before the request is parsed: the head goes back in front of the
        socket, and every later read and write times out (TLS was set up in the lobby)."""
        if not self.initialized:
            self.initialized = True
            self.parser = get_parser(self.cfg, self.sock, self.client)
        if self.head:
            self.parser.unreader.unread(bytes(self.head))
            self.head = bytearray()
        self.sock.settimeout(self.request_timeout)

    def close(self, graceful: bool = False) -> None:
        """Close without waiting (this runs on the worker's main loop): gunicorn's graceful
        close lingers up to 2 s for the client to close first, and ten clients that never do
        stalled the worker for 20 s. Here: end our side, drop what the client sent that is
        already here (so the kernel sends no reset over the answer), close."""
        if not graceful:
            super().close()
            return
        sock = self.sock
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            for _ in range(16):
                if not sock.recv(4096):
                    break
        except (OSError, ValueError):
            pass
        finally:
            sock.close()


class GuardedThreadWorker(ThreadWorker):
    """gunicorn's threaded worker with a lobby for incomplete requests (module docstring)."""

    def init_process(self) -> None:
        self.request_timeout = self.app.request_timeout
        self.tls = self.app.tls_context() if self.cfg.is_ssl else None
        super().init_process()

    # -- accepting ---------------------------------------------------------------------------

    def set_accept_enabled(self, enabled: bool) -> None:
        # At the bound, keep accepting while an idle or waiting connection can make room.
        super().set_accept_enabled(enabled or bool(self.pending_conns or self.keepalived_conns))

    def accept(self, listener) -> None:
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        if self.nr_conns >= self.worker_connections and not self._drop_oldest_idle():
            client.close()  # cannot happen: accepting stops at the bound with nothing to drop
            return
        self.nr_conns += 1
        client.setblocking(False)
        if self.tls is not None:
            client = self.tls.wrap_socket(
                client,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
            )
        conn = GuardedConn(
            self.cfg, client, address, listener.getsockname(), timeout=self.request_timeout
        )
        self._to_lobby(conn)

    def _drop_oldest_idle(self) -> bool:
        """Close the oldest kept-alive, else the oldest waiting connection: False if none."""
        for queue in (self.keepalived_conns, self.pending_conns):
            if queue:
                conn = queue.popleft()
                self._unregister(conn)
                self.nr_conns -= 1
                conn.close()
                return True
        return False

    # -- the lobby: connections whose request headers are not complete yet --------------------

    def _to_lobby(self, conn: GuardedConn) -> None:
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.request_timeout
        conn.want_write = False
        self.pending_conns.append(conn)  # murder_pending() closes it at conn.timeout
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._in_lobby, conn))
        if conn.head or (conn.handshaken and isinstance(conn.sock, ssl.SSLSocket)):
            self._in_lobby(conn, conn.sock)  # bytes may be held already (pipelined, TLS buffer)

    def _in_lobby(self, conn: GuardedConn, _fileobj) -> None:
        try:
            state = self._pump(conn)
        except (OSError, ValueError):
            state = None
        if state is False:
            events = selectors.EVENT_WRITE if conn.want_write else selectors.EVENT_READ
            if self.poller.get_key(conn.sock).events != events:
                self.poller.modify(conn.sock, events, partial(self._in_lobby, conn))
            return
        self.pending_conns.remove(conn)
        self._unregister(conn)
        if state is None:
            self.nr_conns -= 1
            conn.close()
            return
        conn.data_ready = True
        self.enqueue_req(conn)

    @staticmethod
    def _pump(conn: GuardedConn):
        """Read what the client has sent: True when the headers are complete, False to wait,
        None when the client went away or sent too much."""
        if HEADER_END in conn.head:
            return True
        sock = conn.sock
        conn.want_write = False
        try:
            if not conn.handshaken:
                sock.do_handshake()
                conn.handshaken = True
            while True:
                data = sock.recv(MAX_HEADER_BYTES)
                if not data:
                    return None
                conn.head += data
                if HEADER_END in conn.head:
                    return True
                if len(conn.head) > MAX_HEADER_BYTES:
                    return None
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except ssl.SSLWantWriteError:
            conn.want_write = True
            return False
        except ssl.SSLError:
            return None

    def _unregister(self, conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    # -- after an answer ------------------------------------------------------------------------

    def on_client_socket_readable(self, conn, client) -> None:
        """A kept-alive connection has sent something: the lobby waits for its headers."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._to_lobby(conn)

    def finish_request(self, conn, fs) -> None:
        kept = not fs.cancelled() and fs.exception() is None and fs.result() is True
        if kept and self.alive and conn.parser.unreader.buf.getvalue():
            # The client sent (the start of) its next request already: the lobby checks it.
            conn.head = bytearray(conn.parser.unreader.take_buffered())
            self._to_lobby(conn)
            return
        super().finish_request(conn, fs)

    def _cap_keepalive(self, deadline: float) -> None:
        """Stopping: waiting connections are closed soon too, not at their request timeout."""
        super()._cap_keepalive(deadline)
        for conn in self.pending_conns:
            conn.timeout = min(conn.timeout, time.monotonic() + STOP_LINGER_SECONDS)


# -- the gunicorn application -----------------------------------------------------------------


class Server(BaseApplication):
    """gunicorn run from Python: `Server(create_app, options).run()` serves until stopped.

    `make_app` runs in each worker after the fork. When `scheduler` is true, one worker at a
    time also runs the scheduled jobs (`start_scheduler(app)` in that worker).
    """

    def __init__(self, make_app, options: dict, *, request_timeout: float, scheduler=None):
        self.make_app, self.options = make_app, options
        self.request_timeout = request_timeout
        self.start_scheduler = scheduler
        self.scheduler_worker = None  # in the arbiter: the age of the worker running the jobs
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("worker_class", GuardedThreadWorker)
        if self.start_scheduler:
            self.cfg.set("pre_fork", self._pre_fork)
            self.cfg.set("post_worker_init", self._post_worker_init)
            self.cfg.set("child_exit", self._child_exit)
            self.cfg.set("on_reload", self._on_reload)

    def load(self):
        return self.make_app()

    def tls_context(self) -> ssl.SSLContext:
        """One TLS context per worker (gunicorn's own would read the key on every connection);
        a new certificate is read when the workers restart (`kill -HUP` the arbiter)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=self.cfg.certfile, keyfile=self.cfg.keyfile)
        context.set_alpn_protocols(["http/1.1"])
        return context

    # -- scheduled jobs in one worker (hooks; pre_fork/child_exit/on_reload run in the arbiter)

    def _pre_fork(self, arbiter, worker) -> None:
        worker.runs_scheduler = self.scheduler_worker is None
        if worker.runs_scheduler:
            self.scheduler_worker = worker.age  # gunicorn numbers the workers it forks

    def _post_worker_init(self, worker) -> None:
        if worker.runs_scheduler:
            self.start_scheduler(worker.wsgi)
            worker.log.info("scheduled jobs run in worker %s", worker.pid)

    def _child_exit(self, arbiter, worker) -> None:
        if worker.age == self.scheduler_worker:
            self.scheduler_worker = None  # the next worker forked takes over

    def _on_reload(self, arbiter) -> None:
        self.scheduler_worker = None  # reload forks new workers first: one of them takes over


class JsonLinesLogger(GunicornLogger):
    """gunicorn's own lines (start, workers booting and dying, errors) as JSON lines, like the
    app's, so the whole log parses (LOG_FORMAT)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


def gunicorn_options(
    config, *, host, port, workers, threads, certfile=None, keyfile=None, json_logs=False
):
    """gunicorn's settings for `villagecheck serve`, from the app's settings (docs/SETTINGS.md)."""
    options = {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "threads": threads,
        "worker_connections": config["SERVE_MAX_CONNECTIONS"],
        "keepalive": config["SERVE_KEEPALIVE_SECONDS"],
        "graceful_timeout": config["SERVE_GRACEFUL_SECONDS"],
        # A worker whose main loop (accepting, the lobby) stops for this long is replaced.
        # Requests themselves run in threads and are bounded by the socket timeouts instead.
        "timeout": max(30, int(config["REQUEST_TIMEOUT_SECONDS"])),
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "http_protocols": "h1",
        # X-Forwarded-* are the app's business (TRUSTED_PROXY), never gunicorn's.
        "forwarded_allow_ips": "",
        "proxy_protocol": "off",
        "control_socket_disable": True,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "villagecheck",
    }
    if certfile or keyfile:
        options.update(certfile=certfile, keyfile=keyfile)
    if json_logs:
        options["logger_class"] = JsonLinesLogger
    return options
