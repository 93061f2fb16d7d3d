"""Logins, device tokens, roles and the villages each caller may see.

A login returns a long-lived random device token (phones stay offline for days); only its
SHA-256 is stored, so a copy of the database does not hand out working tokens. Every API view
runs with `g.user` and `g.villages`, the caller's scope, and must limit reads and writes to it.
"""

import functools
import hashlib
import math
import secrets
from datetime import timedelta

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.security import check_password_hash, generate_password_hash

from sync.clock import valid_device

from . import limits, login_throttle
from .context import now, now_iso, storage
from .errors import ApiError, error_response
from .requests import json_body

ROLES = ("inspector", "secretary", "supervisor", "admin")
ROLE_NAMES = {
    "inspector": "工作队员",
    "secretary": "第一书记",
    "supervisor": "督查",
    "admin": "管理员",
}

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")
MAX_ROW_ID = 2**63 - 1  # the largest 64-bit id (SQLite, PostgreSQL): a larger one matches nothing

# A password check against this hash costs as much as a real one, so a wrong username
# takes as long to refuse as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-password")


def hash_password(password: str) -> str:
    """A slow, salted hash (werkzeug's scrypt)."""
    return generate_password_hash(password, method="scrypt")


def check_password(user: dict | None, password: str) -> bool:
    """True for the right password; as slow for an unknown user as for a wrong password."""
    checks = limits.gate("password", current_app.config["PASSWORD_CHECKS_AT_ONCE"])
    with checks.slot():  # each scrypt check takes about 32 MB: bound them, as photo decodes
        valid = check_password_hash(user["password_hash"] if user else _DUMMY_HASH, password)
    return bool(user) and valid


def attempt_login(store, username: str, password: str) -> tuple[dict | None, int]:
    """(user, 0) for the right password of an active user, (None, 0) for a wrong one, or
    (None, seconds) when this address or username must wait before trying again.

    The try is counted before the password is checked (server/login_throttle.py), so
    parallel guesses cannot all be checked.
    """
    attempt = login_throttle.count_attempt(store, username)
    if attempt.refused:
        return None, attempt.retry_after
    user = store.user(username=username)
    if not check_password(user, password) or not user["active"]:
        return None, 0
    attempt.succeeded()
    return user, 0


def throttled_message(seconds: int) -> str:
    wait = f"{seconds} 秒" if seconds < 120 else f"{math.ceil(seconds / 60)} 分钟"
    return f"登录失败次数过多，请 {wait}后再试"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def scope_villages(store, user: dict) -> list[str]:
    """The village codes a user may read and write."""
    if user["role"] in ("inspector", "secretary"):
        return store.assigned_villages(user["id"])
    if user["scope_township"] or user["scope_county"]:
        return store.village_codes_where(
            township=user["scope_township"], county=user["scope_county"]
        )
    return store.village_codes_where() if user["role"] == "admin" else []


def public_user(user: dict) -> dict:
    return {
        "id": user["id"],
        "username": user["username"],
        "display_name": user["display_name"],
        "role": user["role"],
        "role_name": ROLE_NAMES[user["role"]],
    }


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_token(view=None, *, roles: tuple[str, ...] = ROLES):
    """Decorator: the request must carry a live device token of a user with one of `roles`."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            token = _bearer_token()
            if not token:
                raise ApiError(401, "token_missing", "请先登录")
            store = storage()
            row = store.token(hash_token(token))
            if row is None:
                raise ApiError(401, "token_invalid", "登录已失效，请重新登录")
            if row["revoked_at"]:
                raise ApiError(401, "token_revoked", "该设备已被注销，请重新登录")
            ttl = timedelta(days=current_app.config["TOKEN_TTL_DAYS"])
            if row["last_used_at"] < (now() - ttl).isoformat():
                raise ApiError(401, "token_expired", "长时间未使用，请重新登录")
            user = store.user(id=row["user_id"])
            if not user or not user["active"]:
                raise ApiError(401, "user_inactive", "账号已停用")
            if user["role"] not in roles:
                raise ApiError(403, "role_forbidden", "您的角色不能进行此操作")
            store.touch_token(row["id"], now_iso())
            g.user, g.token = user, row
            g.villages = frozenset(scope_villages(store, user))
            return fn(*args, **kwargs)

        return wrapper

    return decorate(view) if view else decorate


@bp.post("/login")
def login():
    """Exchange a username and password for a device token."""
    body = json_body()
    username, password = body.get("username"), body.get("password")
    device_id = body.get("device_id") or secrets.token_hex(8)
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise ApiError(400, "invalid", "请输入用户名和密码")
    if not valid_device(device_id):
        raise ApiError(400, "invalid_device_id", "设备编号不正确")
    label = body.get("label") or ""
    if not isinstance(label, str) or len(label) > 100:
        raise ApiError(400, "invalid_label", "设备名称必须是 100 字以内的文字")
    store = storage()
    user, wait = attempt_login(store, username.strip(), password)
    if wait:
        response, status = error_response(
            429, "login_throttled", throttled_message(wait), retry_after=wait
        )
        response.headers["Retry-After"] = str(wait)
        return response, status
    if user is None:
        raise ApiError(401, "login_failed", "用户名或密码错误")
    token = secrets.token_urlsafe(32)
    token_id = store.create_token(
        user_id=user["id"],
        token_hash=hash_token(token),
        device_id=device_id,
        label=label,
        at=now_iso(),
    )
    return jsonify(
        token=token,
        token_id=token_id,
        device_id=device_id,
        user=public_user(user),
        villages=scope_villages(store, user),
    )


@bp.get("/me")
@require_token
def me():
    return jsonify(user=public_user(g.user), villages=sorted(g.villages))


@bp.get("/tokens")
@require_token
def tokens():
    """The caller's device tokens (never the tokens themselves)."""
    rows = storage().tokens_of(g.user["id"])
    return jsonify(tokens=[{**r, "current": r["id"] == g.token["id"]} for r in rows])


@bp.delete("/tokens/<int:token_id>")
@require_token
def revoke(token_id: int):
    """Revoke one of the caller's own tokens (a lost phone)."""
    if token_id > MAX_ROW_ID or not storage().revoke_token(
        token_id, user_id=g.user["id"], by=g.user["id"], at=now_iso()
    ):
        raise ApiError(404, "token_not_found", "找不到该设备登录记录")
    return jsonify(revoked=token_id)


@bp.post("/logout")
@require_token
def logout():
    storage().revoke_token(g.token["id"], user_id=g.user["id"], by=g.user["id"], at=now_iso())
    return jsonify(revoked=g.token["id"])
