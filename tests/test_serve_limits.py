"""Slow and idle clients cannot deny service on `villagecheck serve` (issue 8, finding 10).

Against a live `villagecheck serve` subprocess (gunicorn, one worker process of 4 threads) on
127.0.0.1, with a short request timeout and a small connection bound so the test is quick:
many idle connections (some silent, some trickling their headers) hold no thread, a normal
request is still served at once, the worker never holds more connections than its bound, and
every idle connection is closed after the timeout; the same over HTTPS for clients that never
finish their TLS handshake; and a kept-alive connection is held to the same rules.
"""

import http.client
import json
import os
import selectors
import socket
import ssl
import time
from pathlib import Path

import pytest
from live_serve import Serve
from tls_helpers import self_signed

TIMEOUT = 2
MAX_CONNECTIONS = 100
IDLE = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-limits")
    settings = {
        "REQUEST_TIMEOUT_SECONDS": TIMEOUT,
        "SERVE_MAX_CONNECTIONS": MAX_CONNECTIONS,
        "SERVE_THREADS": 4,
    }
    with Serve(folder, "--no-scheduler", "--workers", "1", settings=settings) as live:
        yield live


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-limits-tls")
    cert, key, _ = self_signed(folder)
    settings = {"REQUEST_TIMEOUT_SECONDS": TIMEOUT, "SERVE_THREADS": 2}
    args = ("--no-scheduler", "--workers", "1", "--certfile", str(cert), "--keyfile", str(key))
    with Serve(folder, *args, settings=settings) as live:
        yield live


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def get_me(port: int, tls: bool = False) -> tuple[int, dict, float]:
    started = time.monotonic()
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=unverified())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/v1/auth/me")
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body, time.monotonic() - started


def open_idle(port: int, count: int) -> list[socket.socket]:
    """Half say nothing; half send the start of a request and never finish its headers."""
    sockets = []
    for n in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if n % 2:
            s.sendall(b"GET /api/v1/auth/me HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sockets.append(s)
    return sockets


def closed_within(sockets: list[socket.socket], seconds: float) -> int:
    """How many of the sockets the server closes (EOF or reset) within `seconds`."""
    selector = selectors.DefaultSelector()
    for s in sockets:
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    closed, deadline = 0, time.monotonic() + seconds
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            try:
                data = key.fileobj.recv(4096)
            except ConnectionResetError:
                data = b""
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(key.fileobj)
                closed += 1
    selector.close()
    return closed


def server_sockets(pid: int) -> int:
    """Sockets the server holds; a descriptor closed while we look is not counted."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:
            continue
    return count


def test_idle_connections_do_not_stop_a_normal_request_and_are_closed_after_the_timeout(server):
    idle = open_idle(server.port, IDLE)
    try:
        status, body, seconds = get_me(server.port)
        assert status == 401 and body["error"]["code"] == "token_missing"
        assert seconds < 3
        if Path("/proc").is_dir():  # the bound holds: excess idle connections were dropped
            (worker,) = server.workers()
            assert server_sockets(worker) <= MAX_CONNECTIONS + 3
        assert closed_within(idle, TIMEOUT + 4) == IDLE
    finally:
        for s in idle:
            s.close()
    assert get_me(server.port)[0] == 401


def trickle_until_closed(s: socket.socket) -> float:
    """Send a header byte every 0.3 s until the server closes: the seconds that took."""
    started = time.monotonic()
    s.sendall(b"GET /api/v1/auth/me HTTP/1.1\r\n")
    closed = False
    while time.monotonic() - started < TIMEOUT + 4:
        try:
            s.sendall(b"X")
        except OSError:
            closed = True
            break
        s.setblocking(False)
        try:
            closed = s.recv(1) == b""
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except (ConnectionResetError, ssl.SSLError):
            closed = True
        s.setblocking(True)
        if closed:
            break
        time.sleep(0.3)
    assert closed
    return time.monotonic() - started


def test_a_kept_alive_connection_must_send_its_next_headers_in_time(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/api/v1/auth/me")
        response = conn.getresponse()
        response.read()
        assert response.status == 401 and not response.will_close  # kept alive
        assert trickle_until_closed(conn.sock) < TIMEOUT + 2
    finally:
        conn.close()
    assert get_me(server.port)[0] == 401


def test_tls_clients_that_never_finish_their_handshake_hold_no_thread(tls_server):
    idle = []
    for n in range(40):  # 20 times the threads
        s = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
        if n % 2:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
        idle.append(s)
    try:
        status, body, seconds = get_me(tls_server.port, tls=True)
        assert status == 401 and body["error"]["code"] == "token_missing"
        assert seconds < 3
        assert closed_within(idle, TIMEOUT + 4) == len(idle)
    finally:
        for s in idle:
            s.close()


def test_trickled_headers_over_tls_are_cut_off_at_the_timeout(tls_server):
    raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
    with unverified().wrap_socket(raw) as s:
        assert trickle_until_closed(s) < TIMEOUT + 2
    assert get_me(tls_server.port, tls=True)[0] == 401


def test_trickled_headers_are_cut_off_at_the_timeout(server):
    """A client sending a header byte now and then still has to finish within the timeout."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    started = time.monotonic()
    try:
        s.sendall(b"GET /api/v1/auth/me HTTP/1.1\r\n")
        closed = False
        while time.monotonic() - started < TIMEOUT + 4:
            try:
                s.sendall(b"X")
            except OSError:
                closed = True
                break
            s.setblocking(False)
            try:
                closed = s.recv(1) == b""
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed = True
            s.setblocking(True)
            if closed:
                break
            time.sleep(0.3)
        assert closed
        assert time.monotonic() - started < TIMEOUT + 2
    finally:
        s.close()


def test_a_body_that_stops_coming_times_out(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT + 5)
    try:
        s.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"user'
        )
        started = time.monotonic()
        assert closed_within([s], TIMEOUT + 4) == 1
        assert time.monotonic() - started < TIMEOUT + 3
    finally:
        s.close()
    assert get_me(server.port)[0] == 401


def test_clients_that_stay_open_after_a_closing_answer_do_not_stall_the_worker(server):
    """The answer to an HTTP/1.0 request ends the connection; a client that neither reads it
    nor closes must not hold up the worker while it closes (it used to linger 2 s each)."""
    lingering = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"GET /api/v1/auth/me HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        lingering.append(s)
    try:
        time.sleep(0.5)
        status, _, seconds = get_me(server.port)
        assert status == 401 and seconds < 1.5
    finally:
        for s in lingering:
            s.close()
