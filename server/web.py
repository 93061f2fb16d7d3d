"""Cookie sessions for the server-rendered pages (supervisors and admins), with CSRF checks.

Phones use device tokens (server/auth.py); people at a laptop log in here. Every POST from a
page must carry the session's CSRF token (a hidden `csrf_token` field or an X-CSRF-Token
header), so another site cannot make a logged-in supervisor's browser approve a submission.
"""

import functools
import hmac
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from .auth import ROLE_NAMES, attempt_login, login_locked, scope_villages
from .context import now_iso, storage

bp = Blueprint("web", __name__)
PAGE_ROLES = ("supervisor", "admin")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """400 unless a state-changing request carries this session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="页面已过期，请刷新后重试 (CSRF token missing or wrong)")


def login_required(view=None, *, roles: tuple[str, ...] = PAGE_ROLES):
    """Decorator for pages: a logged-in user with one of `roles`; sets g.user and g.villages."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            user_id = session.get("user_id")
            user = storage().user(id=user_id) if user_id else None
            if user is None or not user["active"]:
                session.clear()
                return redirect(url_for("web.login", next=request.full_path))
            if user["role"] not in roles:
                abort(403)
            g.user = user
            g.villages = frozenset(scope_villages(storage(), user))
            check_csrf()
            return fn(*args, **kwargs)

        return wrapper

    return decorate(view) if view else decorate


@bp.app_context_processor
def _template_globals():
    return {"csrf_token": csrf_token, "ROLE_NAMES": ROLE_NAMES}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The supervisors' and admins' login page."""
    if request.method == "POST":
        check_csrf()
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        locked = bool(username) and login_locked(storage(), username)
        user = attempt_login(storage(), username, password) if username and not locked else None
        if user and user["role"] in PAGE_ROLES:
            session.clear()
            session["user_id"] = user["id"]
            session.permanent = True
            storage().audit("web.login", at=now_iso(), user_id=user["id"])
            target = request.args.get("next", "")
            return redirect(
                target
                if target.startswith("/") and not target.startswith("//")
                else url_for("web.home")
            )
        if user:
            flash("工作队员和第一书记请使用手机应用登录")
        elif locked:
            flash(f"登录失败次数过多，请 {current_app.config['LOGIN_LOCK_MINUTES']} 分钟后再试")
        else:
            flash("用户名或密码错误")
    return render_template("login.html")


@bp.post("/logout")
@login_required
def logout():
    session.clear()
    return redirect(url_for("web.login"))


@bp.get("/desk")
@login_required
def home():
    """The landing page after login: links to the supervisor's and admin's work."""
    return render_template("home.html")
