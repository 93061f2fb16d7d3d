"""Logs: one line per request, and the application's own records, as JSON lines or plain text.

`install(app)` (called by the app factory) gives every request an id: the caller's
`X-Request-ID` when it is a sane token (nginx's `$request_id`, a load balancer's), else a new
one, echoed in the response's `X-Request-ID`. After each request one record goes to the
`villagecheck.access` logger: request id, user id (a phone's token or a desk login), the URL
*rule* (`/api/v1/submissions/<submission_id>`, never the path: no ids, tokens or query strings),
method, status and duration. Every record logged during a request (the app's, ingest's, the
scheduler's) carries the request id.

What is never logged: headers (so no Authorization, no cookies), query strings, bodies, paths.
Successful `/healthz` and `/readyz` probes are not logged (a probe every few seconds would
drown the log); a failing one is.

LOG_FORMAT: `json` (one object per line, for journald/logrotate and log shippers), `text`
(one readable line), or `auto` (the default): text when testing or when stderr is a terminal,
JSON otherwise, so `villagecheck serve` under systemd or gunicorn writes JSON lines while a
developer's terminal and pytest's failure reports stay readable.
"""

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request

ACCESS = logging.getLogger("villagecheck.access")
# The loggers the app writes to: Flask's `app.logger` (named after the package) and ours.
LOGGERS = ("server", "villagecheck")
PROBES = frozenset({"/healthz", "/readyz"})

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id() -> str | None:
    """The current request's id (None outside a request)."""
    return g.get("request_id") if has_request_context() else None


def sane_request_id(value: str | None) -> str:
    """The caller's request id if it is a plain token of at most 128 characters, else a new one
    (never anything that could forge a log line or smuggle a header)."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):  # gunicorn's own records have none
            line["request_id"] = record.request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (pytest swaps it per test)."""

    def __init__(self):
        super().__init__()
        self.addFilter(_RequestIdFilter())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


_HANDLER = _StderrHandler()


def log_format(app: Flask) -> str:
    chosen = str(app.config.get("LOG_FORMAT") or "auto").lower()
    if chosen in ("json", "text"):
        return chosen
    if chosen != "auto":
        raise ValueError(f"LOG_FORMAT must be json, text or auto, not {chosen!r}")
    return "text" if app.testing or sys.stderr.isatty() else "json"


def install_format(app: Flask) -> None:
    """Format log records as the app's LOG_FORMAT says (the handler is the process's)."""
    _HANDLER.setFormatter(JsonFormatter() if log_format(app) == "json" else TextFormatter())


def install(app: Flask) -> None:
    """Format the app's log records and log each request (see the module docstring)."""
    install_format(app)
    for name in (*LOGGERS, "werkzeug"):
        logger = logging.getLogger(name)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)
        if not app.testing and logger.level == logging.NOTSET:
            # werkzeug's own line per request names the raw path and query: ours replaces it
            logger.setLevel(logging.WARNING if name == "werkzeug" else logging.INFO)
    _ = app.logger  # Flask adds its own stderr handler on first use unless one is there
    from flask.logging import default_handler

    app.logger.removeHandler(default_handler)
    app.before_request(_begin)
    app.after_request(_finish)


def _begin() -> None:
    g.request_id = sane_request_id(request.headers.get("X-Request-ID"))
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    rid = g.get("request_id") or sane_request_id(None)
    response.headers["X-Request-ID"] = rid
    rule = request.url_rule.rule if request.url_rule is not None else None
    if rule in PROBES and response.status_code < 400:
        return response
    started = g.get("request_started")
    user = g.get("user")
    ACCESS.info(
        "%s %s %s",
        request.method,
        rule or "(no route)",
        response.status_code,
        extra={
            "request_id": rid,
            "user_id": user.get("id") if isinstance(user, dict) else None,
            "route": rule,
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        },
    )
    return response
