"""Reading request bodies safely: JSON objects only, bounded in size."""

from flask import current_app, request

from .errors import ApiError


def json_body() -> dict:
    """The request's JSON object, or a clear 400/413/415."""
    limit = current_app.config["MAX_JSON_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"请求内容超过 {limit // 1024 // 1024} MB")
    if not request.is_json:
        raise ApiError(415, "json_required", "请求内容必须是 JSON (application/json)")
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"请求内容超过 {limit // 1024 // 1024} MB")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_json", "JSON 格式不正确")
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "请求内容必须是 JSON 对象")
    return body
