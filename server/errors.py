"""One error envelope for the API: `{"error": {"code": ..., "message": ...}}`.

Views raise `ApiError`; app-wide handlers turn it, and every HTTP error Flask raises itself
(bad JSON, oversized body, unknown route), into that envelope on /api/ routes, so a phone
never has to parse an HTML error page.
"""

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from media.store import StoreUnavailable

from .storage import DatabaseUnavailable, is_busy

BUSY_RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error a client can act on: HTTP status, a stable code, and a message."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(status: int, code: str, message: str, **extra):
    body = {"error": {"code": code, "message": message, **extra}}
    return jsonify(body), status


_HTTP_CODES = {
    400: ("bad_request", "请求格式不正确"),
    401: ("unauthorized", "请先登录"),
    403: ("forbidden", "没有权限"),
    404: ("not_found", "找不到该地址"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("too_large", "请求内容太大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
}


def register(app: Flask) -> None:
    """Install the JSON error handlers."""

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err.status, err.code, err.message, **err.extra)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        if not request.path.startswith("/api/"):
            return err
        code, message = _HTTP_CODES.get(err.code, ("http_error", err.name))
        response, status = error_response(err.code, code, message)
        # Keep what the error says besides its page, e.g. `Allow` on a 405 (RFC 9110).
        for name, value in err.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        if is_busy(err):
            return _busy(app)
        if isinstance(err, DatabaseUnavailable):
            return _unavailable(app, err)
        if isinstance(err, StoreUnavailable):
            return _store_unavailable(app, err)
        if isinstance(err, TimeoutError):  # the request body stopped coming (serve's timeout)
            return error_response(408, "request_timeout", "网络太慢，请求超时，请重试")
        app.logger.exception("unhandled error on %s", request.path)
        if not request.path.startswith("/api/"):
            return "服务器内部错误 (internal server error)", 500
        return error_response(500, "internal", "服务器内部错误，请稍后再试")


def _try_again(code: str, api_message: str, page_message: str):
    """503 with Retry-After: nothing of the request was kept, the phone sends it again."""
    headers = {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)}
    if not request.path.startswith("/api/"):
        return page_message, 503, headers
    response, status = error_response(503, code, api_message)
    response.headers.update(headers)
    return response, status


def _busy(app: Flask):
    """A write could not get the database in time (it wrote nothing)."""
    app.logger.warning("database busy on %s", request.path)
    return _try_again(
        "busy", "服务器繁忙，请稍后自动重试", "服务器繁忙，请稍后再试 (server busy, try again)"
    )


def _unavailable(app: Flask, err: DatabaseUnavailable):
    """The database could not be reached or dropped mid-request (nothing was half-written: the
    transaction died with the connection)."""
    app.logger.error("database unavailable on %s: %s", request.path, err)
    return _try_again(
        "database_unavailable",
        "服务器暂时连不上数据库，数据仍在手机上，稍后自动重试",
        "数据库暂时无法连接，请稍后再试 (database unavailable)",
    )


def _store_unavailable(app: Flask, err: StoreUnavailable):
    """The photo store (an object store) could not be reached or failed for now: nothing was
    marked complete that is not stored. Every store maps its own failures to
    `StoreUnavailable` (S3: media/s3_store.py `_translated`)."""
    app.logger.error("photo store unavailable on %s: %s", request.path, err)
    return _try_again(
        "store_unavailable",
        "服务器暂时连不上照片存储，照片仍在手机上，稍后自动重试",
        "照片存储暂时无法连接，请稍后再试 (photo store unavailable)",
    )
