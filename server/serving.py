"""The HTTP server of `villagecheck serve`: safe defaults without a proxy in front.

werkzeug's threaded development server gives every connection a thread and never times out a
client that sends nothing: about 1,100 idle connections exhaust the usual 1,024 open files and
deny service. Here instead:

- a lobby thread watches accepted connections until their request headers are complete, so a
  client that connects and waits, or trickles its headers, holds a socket but no thread; it is
  closed when its headers are not complete within REQUEST_TIMEOUT_SECONDS;
- a fixed pool of SERVE_THREADS threads serves complete requests in arrival order, reading the
  body with the same timeout on every socket read;
- at most SERVE_MAX_CONNECTIONS connections are open at once: at the bound the oldest waiting
  connection is dropped for the new one, and when every connection is being served the server
  stops accepting, so new clients wait in the kernel's listen backlog, not in a thread;
- one request per connection (HTTP/1.0), so no idle keep-alive connection holds a thread.

In production nginx in front buffers slow clients (docs/DEPLOY.md, a later issue).
"""

import io
import selectors
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024  # beyond this the request is handed on and refused by the parser


class _Replay(io.RawIOBase):
    """The header bytes the lobby read already, then the rest of the socket."""

    def __init__(self, head: bytes, sock: socket.socket):
        self.head = memoryview(head)
        self.sock = sock.makefile("rb", buffering=0)

    def close(self) -> None:
        self.sock.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return self.sock.readinto(buffer)


class RequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # every later socket read and write
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_Replay(self.server.heads.pop(self.request), self.request))


class _Waiting:
    __slots__ = ("address", "since", "head")

    def __init__(self, address):
        self.address, self.since, self.head = address, time.monotonic(), b""


class GuardedWSGIServer(BaseWSGIServer):
    """A bounded, timed-out WSGI server (see the module docstring)."""

    multithread = True

    def __init__(self, host, port, app, *, threads, max_connections, timeout, handler=None):
        super().__init__(host, port, app, handler=handler or RequestHandler)
        self.request_timeout = timeout
        self.heads: dict[socket.socket, bytes] = {}
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="villagecheck-request")
        self._selector = selectors.DefaultSelector()
        self._waiting: OrderedDict[socket.socket, _Waiting] = OrderedDict()
        self._lock = threading.Lock()
        self._lobby = threading.Thread(target=self._watch, name="villagecheck-lobby", daemon=True)
        self._lobby.start()

    # -- accepting (the serve_forever thread) --------------------------------------------------

    def process_request(self, request, client_address) -> None:
        while not self._slots.acquire(blocking=False):
            if not self._drop_oldest_waiting():
                self._slots.acquire()  # all connections are being served: stop accepting
                break
        request.setblocking(False)
        with self._lock:
            self._waiting[request] = _Waiting(client_address)
            self._selector.register(request, selectors.EVENT_READ)

    def _drop_oldest_waiting(self) -> bool:
        with self._lock:
            if not self._waiting:
                return False
            request = next(iter(self._waiting))
            self._forget(request)
        self._close(request)
        return True

    # -- the lobby: connections whose headers are not complete yet -----------------------------

    def _watch(self) -> None:
        while True:
            try:
                for key, _ in self._selector.select(timeout=0.5):
                    self._read_head(key.fileobj)
                self._expire()
            except Exception as exc:  # noqa: BLE001 (the lobby must outlive any one connection)
                self.log("error", "lobby: %r", exc)

    def _read_head(self, request: socket.socket) -> None:
        with self._lock:
            waiting = self._waiting.get(request)
            if waiting is None:
                return
            try:
                data = request.recv(MAX_HEADER_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            waiting.head += data
            complete = HEADER_END in waiting.head or len(waiting.head) >= MAX_HEADER_BYTES
            if data and not complete:
                return
            self._forget(request)
        if not data:
            self._close(request)
            return
        request.setblocking(True)
        self.heads[request] = waiting.head
        self._pool.submit(self._serve, request, waiting.address)

    def _expire(self) -> None:
        limit = time.monotonic() - self.request_timeout
        with self._lock:
            late = [r for r, w in self._waiting.items() if w.since < limit]
            for request in late:
                self._forget(request)
        for request in late:
            self._close(request)

    def _forget(self, request) -> None:
        """Take a connection out of the lobby (the caller holds the lock)."""
        del self._waiting[request]
        self._selector.unregister(request)

    # -- serving (the pool threads) --------------------------------------------------------------

    def _serve(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.heads.pop(request, None)
            self._close(request)

    def _close(self, request) -> None:
        self.shutdown_request(request)
        self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def serve(app, host: str, port: int) -> None:
    """Serve `app` until interrupted, with the bounds from its settings."""
    config = app.config
    server = GuardedWSGIServer(
        host,
        port,
        app,
        threads=config["SERVE_THREADS"],
        max_connections=config["SERVE_MAX_CONNECTIONS"],
        timeout=config["REQUEST_TIMEOUT_SECONDS"],
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
