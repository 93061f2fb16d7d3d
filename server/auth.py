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

from . import limits, login_throttle, password_policy, totp
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


def hash_password(password: str, *, username: str) -> str:
    """A slow, salted hash (werkzeug's scrypt) of a password that follows the policy
    (server/password_policy.py); raises PasswordRejected otherwise. Every way of setting a
    password (CLI, desk, API, admin pages, demo data) comes through here."""
    password_policy.check(password, username)
    return generate_password_hash(password, method="scrypt")


def password_change_due(user: dict) -> str | None:
    """Why the user must choose a new password before anything else, or None:
    "must_change" (first login, or after an admin's reset) or "expired" (PASSWORD_MAX_AGE_DAYS).
    """
    if user.get("must_change_password"):
        return "must_change"
    max_age = current_app.config.get("PASSWORD_MAX_AGE_DAYS") or 0
    changed = user.get("password_changed_at") or user.get("created_at") or ""
    if max_age > 0 and changed < (now() - timedelta(days=max_age)).isoformat():
        return "expired"
    return None


PASSWORD_DUE_MESSAGES = {
    "must_change": "首次登录或管理员重置密码后，请先设置自己的新密码",
    "expired": "密码已超过有效期，请设置新密码",
}


def totp_enrolled(user: dict) -> bool:
    return bool(user.get("totp_secret"))


def totp_enrolment_due(user: dict) -> bool:
    """True when the user's role requires two-factor login (TOTP_REQUIRED_ROLES) and they have
    not enrolled yet."""
    return not totp_enrolled(user) and user["role"] in totp.required_roles(current_app.config)


def check_second_factor(store, user: dict, code: str) -> bool:
    """A current TOTP code (each time step once) or an unused recovery code (spent here)."""
    code = (code or "").strip()
    if not code or not totp_enrolled(user) or len(code) > 32:
        return False
    if totp.looks_like_recovery(code):
        return store.use_recovery_code(user["id"], totp.hash_recovery(code), at=now_iso())
    secret = totp.unseal(user["totp_secret"], current_app.config["SECRET_KEY"])
    if secret is None:
        return False
    step = totp.matching_step(secret, code, now().timestamp())
    return step is not None and store.accept_totp_step(user["id"], step)


def second_factor_attempt(store, user: dict, code: str) -> tuple[bool, int]:
    """(accepted, wait): a code try, counted by the login throttle like a password try."""
    attempt = login_throttle.count_attempt(store, user["username"])
    if attempt.refused:
        return False, attempt.retry_after
    if not check_second_factor(store, user, code):
        return False, 0
    attempt.succeeded()
    return True, 0


def check_password(user: dict | None, password: str) -> bool:
    """True for the right password; as slow for an unknown user as for a wrong password."""
    checks = limits.gate("password", current_app.config["PASSWORD_CHECKS_AT_ONCE"])
    with checks.slot():  # each scrypt check takes about 32 MB: bound them, as photo decodes
        valid = check_password_hash(user["password_hash"] if user else _DUMMY_HASH, password)
    return bool(user) and valid


def attempt_login(store, username: str, password: str, code: str | None = None):
    """(user, 0) for the right password of an active user, (None, 0) for a wrong one, or
    (None, seconds) when this address or username must wait before trying again.

    The try is counted before the password is checked (server/login_throttle.py), so
    parallel guesses cannot all be checked. With `code` (the API's one-request login of a user
    with two-factor login) the try succeeds only when the code is right too.
    """
    attempt = login_throttle.count_attempt(store, username)
    if attempt.refused:
        return None, attempt.retry_after
    user = store.user(username=username)
    if not check_password(user, password) or not user["active"]:
        return None, 0
    if code is not None and not check_second_factor(store, user, code):
        return None, 0
    if code is None and totp_enrolled(user):
        return user, 0  # the desk asks for the code next, and that try counts as the success
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
    user = _api_credentials(store, username, password, body.get("code"))
    if not isinstance(user, dict):
        return user
    due = password_change_due(user)
    if due:
        raise ApiError(403, "password_change_required", PASSWORD_DUE_MESSAGES[due], reason=due)
    if totp_enrolment_due(user):
        raise ApiError(
            403, "second_factor_enrolment_required", "请先在电脑上登录工作台，绑定两步验证"
        )
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


def _api_credentials(store, username: str, password: str, code) -> dict | tuple:
    """The user for a right username and password (and, for a user with two-factor login, a
    right code), or the 429 response to return; raises the API's other refusals. Every try is
    throttled."""
    if code is not None and not isinstance(code, str):
        raise ApiError(400, "invalid", "验证码必须是文字")
    known = store.user(username=username.strip())
    needs_code = bool(known) and totp_enrolled(known)
    user, wait = attempt_login(
        store, username.strip(), password, (code or "") if needs_code else None
    )
    if wait:
        response, status = error_response(
            429, "login_throttled", throttled_message(wait), retry_after=wait
        )
        response.headers["Retry-After"] = str(wait)
        return response, status
    if user is None:
        if needs_code and not code:
            raise ApiError(401, "second_factor_required", "请输入动态验证码（或恢复码）")
        raise ApiError(401, "login_failed", "用户名或密码错误" + ("或验证码错误" if code else ""))
    return user


@bp.post("/password")
def change_password():
    """Change one's own password with the current one (first login, after an admin's reset,
    or when it has expired): a phone answered `password_change_required` has no token yet.
    Device tokens stay valid; desk sessions end."""
    body = json_body()
    username, password = body.get("username"), body.get("password")
    new_password = body.get("new_password")
    if not all(isinstance(v, str) and v for v in (username, password, new_password)):
        raise ApiError(400, "invalid", "请输入用户名、原密码和新密码")
    store = storage()
    user = _api_credentials(store, username, password, body.get("code"))
    if not isinstance(user, dict):
        return user
    if new_password == password:
        raise ApiError(422, "password_reused", "新密码不能与原密码相同")
    try:
        new_hash = hash_password(new_password, username=user["username"])
    except password_policy.PasswordRejected as exc:
        raise ApiError(422, exc.code, str(exc), problems=exc.problems) from None
    store.set_password_hash(
        user["id"], new_hash, at=now_iso(), revoke_tokens=False, must_change=False
    )
    return jsonify(changed=True)


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
